"""The encode-only ceiling: what the service could reach if the model were free.

``encode_only_video`` is lipsync's: decode the speaker video (PyAV) and the audio, encode the
video's own frames (its I420 samples, as the server passes them through) at its own size with
the same encoder and lipsync's settings (compose.LIPSYNC_ENCODING).

Decodes the same audio file and portrait with the server's own decoders, then H.264/AAC-encodes
the same number of frames at the same size with the server's own ``FragmentedMp4Encoder``
(the settings of an avatar generation, compose.AVATAR_ENCODING; 200 ms fragments). Every frame
is the still portrait: the rendered video differs only around the mouth, so this is a slightly
optimistic (upper) bound. Runs in this process, single-threaded per stream like the server's
encoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a2v_server.media.audio import EncodedAudioDecoder
from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.image import decode_image
from a2v_server.pipeline.compose import AVATAR_ENCODING, LIPSYNC_ENCODING


@dataclass
class Ceiling:
    frames: int
    audio_seconds: float
    seconds: float  # decode + encode wall time

    @property
    def rtf(self) -> float:
        return self.audio_seconds / self.seconds

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def encode_only(audio: Path, image: Path, width: int, height: int, fps: float = 25.0) -> Ceiling:
    """Decode ``audio`` and ``image`` and encode ``round(seconds * fps)`` frames, timed."""
    started = time.perf_counter()
    portrait = decode_image(image.read_bytes())
    # Cover-resize to the output size (the server crops around the face; same pixel count).
    scale = max(width / portrait.shape[1], height / portrait.shape[0])
    resized = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    y0 = (resized.shape[0] - height) // 2
    x0 = (resized.shape[1] - width) // 2
    frame = np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])
    return _encode(audio, [frame], fps, started)


def encode_only_video(audio: Path, video: Path, size: tuple[int, int] | None = None) -> Ceiling:
    """Decode ``video`` and ``audio`` and encode as many of the video's frames as the audio
    lasts (repeating them if the video is shorter: the cost is the same in any order), timed.
    ``size``: the frames scaled to it as they are decoded (swscale's area filter, as the server
    scales a source larger than its output: media/video.SourceVideo.decode_at)."""
    import av

    started = time.perf_counter()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        if size is None:
            frames = [f.to_ndarray() for f in container.decode(stream)]  # packed I420
        else:
            stream.thread_type = "FRAME"  # as the server decodes pictures above 1080p
            width, height = size
            frames = [
                f.reformat(width, height, "yuv420p", interpolation="AREA").to_ndarray()
                for f in container.decode(stream)
            ]
    return _encode(audio, frames, fps, started, i420=True)


def _encode(
    audio: Path, frames_in: list[np.ndarray], fps: float, started: float, *, i420: bool = False
) -> Ceiling:
    """Decode ``audio`` and encode it with ``frames_in`` (cycled; RGB, or packed I420 with
    lipsync's encoder settings) at ``fps``, keeping the video level with the audio as the
    pipeline does; timed from ``started``."""
    height, width = frames_in[0].shape[:2]
    if i420:
        height = height * 2 // 3
    settings = LIPSYNC_ENCODING if i420 else AVATAR_ENCODING
    decoder = EncodedAudioDecoder()
    decoder.write(audio.read_bytes())
    decoder.end()
    encoder: FragmentedMp4Encoder | None = None
    model_samples = frames = 0
    for block in decoder.blocks():
        if encoder is None:
            encoder = FragmentedMp4Encoder(
                width, height, fps, block.output_pcm.shape[0], **settings
            )
            add = encoder.add_i420 if i420 else encoder.add_video
        encoder.add_audio(block.output_pcm)
        model_samples += len(block.model_pcm)
        while frames < int(model_samples * fps / 16000):
            add(frames_in[frames % len(frames_in)])
            frames += 1
    if encoder is None:
        raise RuntimeError(f"{audio}: no audio decoded")
    while frames < round(model_samples * fps / 16000):
        add(frames_in[frames % len(frames_in)])
        frames += 1
    size = sum(len(s.data) for s in encoder.close())
    if size <= 0:
        raise RuntimeError("the encoder produced nothing")
    return Ceiling(frames, model_samples / 16000, time.perf_counter() - started)
