"""Model output -> what the encoder and the client get: full frames, and timeline events."""

from __future__ import annotations

from typing import Any

import numpy as np

from a2v_server.domain import Timeline, TimelineFrame
from a2v_server.errors import ModelFault
from a2v_server.inference.backend import FrameBatch
from a2v_server.media import yuv
from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.fmp4 import Segment
from a2v_server.media.yuv import Converter
from a2v_server.pipeline.lipsync_frames import Waiting
from a2v_server.pipeline.look import FrameStyler

#: x264 settings, at a constant QP (encoder.py says why: a re-rendered range must be the full
#: render's frames). The avatar's: veryfast at QP 17, which on a 720p avatar clip took 863 KB
#: at 43.1 dB against the frames where CRF 20 took 913 KB at 43.5 dB, and 7.9 instead of 8.2 ms
#: a frame. Lipsync promises the source's pixels outside the mouth, so it spends more bits
#: (QP 16: 4298 KB at 42.3 dB on the bench's 720p speaker video, where CRF 16 took 4457 KB at
#: 41.6 dB), and encodes with superfast, which at 1080p takes 15.9 instead of 29.0 ms a frame
#: on the bench machine for the same PSNR and 25 % more bytes: the encoder is most of
#: lipsync's work, and the source's frames cost bits in any case.
AVATAR_ENCODING: dict[str, Any] = {"qp": 17, "preset": "veryfast"}
LIPSYNC_ENCODING: dict[str, Any] = {"qp": 16, "preset": "superfast"}


def encode_batch(
    encoder: FragmentedMp4Encoder,
    batch: FrameBatch,
    styler: FrameStyler | None,
    canvas: np.ndarray | None,
) -> list[Segment]:
    """Encode a batch of model frames (runs in the encoder's thread)."""
    segments = []
    parts = batch.parts or (batch,)  # several speakers: a part per face, all pasted
    for k, frame in enumerate(batch.frames):
        changed = None
        if batch.parts is not None or (batch.region is not None and canvas is not None):
            assert canvas is not None
            for part in parts:
                if part.region is None:  # a whole frame
                    canvas[...] = part.frames[k]
                    changed = (0, 0, canvas.shape[1], canvas.shape[0])
                    continue
                x0, y0, x1, y1 = part.region  # the model sent only the part that changes
                canvas[y0:y1, x0:x1] = part.frames[k]  # safe: the encoder copies each frame
                changed = part.region if changed is None else _union(changed, part.region)
            frame = canvas  # ... and the encoder converts only what changed
        if styler is not None:
            frame = styler.apply(batch.first_index + k, frame)
            changed = None  # looks and camera moves change every pixel
        segments.extend(encoder.add_video(frame, changed))
    return segments


def encode_lipsync(
    encoder: FragmentedMp4Encoder,
    batch: FrameBatch,
    waiting: list[Waiting],
    converter: Converter,
    styler: FrameStyler | None,
) -> list[Segment]:
    """Paste what the lipsync model changed into the kept output frames and encode them (runs
    in the encoder's thread). A model that takes I420 answers in I420: its changed samples
    are copied as they are; an RGB answer's changed box is converted from RGB. Every other
    sample is the kept frame's (the source's own, when the output is the source's size)."""
    segments = []
    parts = batch.parts or (batch,)  # several speakers: a part per face
    for k, sent in enumerate(waiting):
        i420 = sent.frame.i420
        wx0, wy0, wx1, wy1 = sent.window
        copied = False
        for part in parts:
            if part.shown is not None and not part.shown[k]:
                continue  # a face outside its turns: the source's own pixels
            pixels = part.frames[k]
            x0, y0, x1, y1 = part.region if part.region is not None else sent.window
            if not (wx0 <= x0 < x1 <= wx1 and wy0 <= y0 < y1 <= wy1):
                raise ModelFault(
                    f"the model changed {(x0, y0, x1, y1)} of frame {batch.first_index + k}, "
                    f"outside the window {sent.window} it was given"
                )
            if sent.crop.ndim == 2:  # packed I420 both ways: the changed samples, copied
                if (x0 - wx0) % 2 or (y0 - wy0) % 2 or (x1 - x0) % 2 or (y1 - y0) % 2:
                    raise ModelFault(f"the model's I420 region {(x0, y0, x1, y1)} has odd edges")
                if pixels.shape != ((y1 - y0) * 3 // 2, x1 - x0):
                    raise ModelFault(
                        f"the model sent {pixels.shape} samples for the I420 box {(x0, y0, x1, y1)}"
                    )
                under = yuv.crop(sent.crop, (x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0))
                if not np.array_equal(under, pixels):
                    if not copied:  # the kept frame may be the decoder's cached picture
                        i420, copied = encoder.staged(i420), True
                    yuv.paste(i420, pixels, (x0, y0), under)
                continue
            box = sent.crop[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
            if box.shape != pixels.shape:
                raise ModelFault(f"the model sent {pixels.shape} pixels for the box {box.shape}")
            if not np.array_equal(box, pixels):
                if not copied:  # the kept frame may be the decoder's cached picture
                    i420, copied = encoder.staged(i420), True
                original = box.copy() if len(parts) > 1 else None
                box[...] = pixels
                converter.paste_rgb(i420, sent.crop, (wx0, wy0), (x0, y0, x1, y1))
                if original is not None:  # the crop is shared by the other faces' parts
                    box[...] = original
        if styler is not None:  # looks and camera moves change every pixel
            rgb = converter.to_rgb(i420)
            segments.extend(encoder.add_video(styler.apply(batch.first_index + k, rgb)))
        else:
            segments.extend(encoder.add_i420(i420))
    return segments


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]):
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def timeline(batch: FrameBatch, fps: float) -> Timeline:
    """The per-frame animation data of a batch (sent when the caller asked for it)."""
    frames = []
    for k in range(len(batch.frames)):
        index = batch.first_index + k
        yaw, pitch, roll = (
            (float(v) for v in batch.head_pose[k]) if batch.head_pose is not None else (0, 0, 0)
        )
        frames.append(
            TimelineFrame(
                index=index,
                time_seconds=index / fps,
                mouth_open=float(batch.mouth_open[k]),
                viseme=int(batch.viseme[k]) if batch.viseme is not None else 0,
                head_pose=(float(yaw), float(pitch), float(roll)),
                blink=float(batch.blink[k]) if batch.blink is not None else 0.0,
            )
        )
    return Timeline(tuple(frames))
