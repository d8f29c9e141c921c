"""H.264 + AAC encoding into a streamable fragmented MP4, segment by segment.

Muxer flags (``movflags``), chosen by measurement with PyAV 18 / FFmpeg 8:

* ``frag_keyframe`` + ``frag_duration``: a fragment is cut at every keyframe and whenever it
  reaches ``fragment_seconds``, so fragments leave the encoder a few frames after their content
  was produced instead of once per GOP, and every GOP starts a fragment (random access).
* ``delay_moov`` rather than ``empty_moov``: the init segment is written together with the
  first fragment, which lets the muxer write an edit list that hides the AAC encoder priming
  (1024 samples). With ``empty_moov`` the priming cannot be described and FFmpeg shifts the
  whole video track 21.3 ms late instead (its first frame is stretched); with
  ``negative_cts_offsets`` the priming samples are played and the audio is 21.3 ms late. With
  ``delay_moov`` ffprobe shows video starting at 0 and the first audible sample at 0.
* ``default_base_moof``: the layout Media Source Extensions expect (no absolute offsets).
* ``skip_trailer``: no ``mfra`` index after the last fragment; a stream has no use for it.

Timestamps come from frame and sample counts only, never the wall clock.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np

from a2v_server.media.fmp4 import Mp4BoxSplitter, Segment
from a2v_server.media.yuv import BT709, Colour, Converter, KeptPicture, planes

log = logging.getLogger(__name__)

_AAC_FRAME = 1024
_MOVFLAGS = "frag_keyframe+delay_moov+default_base_moof+skip_trailer"


def _as_rate(fps: float | Fraction) -> Fraction:
    """Exact frame rate: 29.97 means 30000/1001 (NTSC), as players and x264 expect."""
    if isinstance(fps, Fraction):
        return fps
    ntsc = round(fps * 1.001)
    if ntsc > 0 and abs(fps - ntsc * 1000 / 1001) < 0.005 and abs(fps - ntsc) > 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def keyframe_interval(fps: float | Fraction, keyframe_seconds: float = 1.0) -> int:
    """Frames from one keyframe to the next (the GOP): the encoder's fixed keyframe grid."""
    return max(1, round(float(keyframe_seconds * _as_rate(fps))))


def sample_at(frame: int, fps: float | Fraction, audio_rate: int) -> int:
    """The audio sample (at ``audio_rate``) at frame ``frame``'s time: where a range of a
    clip that starts at that frame starts its audio."""
    return round(Fraction(frame) / _as_rate(fps) * audio_rate)


class _SplitterSink:
    """Write-only file object handed to FFmpeg: every write goes into the box splitter."""

    def __init__(self) -> None:
        self.splitter = Mp4BoxSplitter()
        self.segments: list[Segment] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.segments.extend(self.splitter.feed(data))
        return len(data)

    def take(self) -> list[Segment]:
        segments, self.segments = self.segments, []
        return segments


class FragmentedMp4Encoder:
    """Encodes RGB frames and float PCM into fMP4 segments (init first, then fragments).

    Not thread-safe: call it from one thread (encoding is CPU-bound; run it off the event loop).
    Each ``add_*`` call returns the segments that became complete, usually none; the first
    fragment comes out about ``fragment_seconds`` of video after the start.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float | Fraction,
        audio_channels: int,
        *,
        audio_rate: int = 48000,
        keyframe_seconds: float = 1.0,
        fragment_seconds: float = 0.2,
        preset: str = "veryfast",
        qp: int = 17,
        colour: Colour = BT709,
        start_frame: int = 0,
    ) -> None:
        """``start_frame``: the first frame's number in the clip (a range of a longer clip):
        frames and audio then carry the clip's timestamps, the audio from that frame's time."""
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
        self.fps = _as_rate(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width, self.height = width, height
        self.audio_channels, self.audio_rate = audio_channels, audio_rate
        self.fragment_seconds = fragment_seconds
        # Audio leads the video by a fragment and four AAC frames: so each fragment carries
        # both tracks, and the first frame's call already muxes an audio packet a fragment's
        # length past the first (with AAC's priming frame and the encoder's delay, that needs
        # 13 AAC frames for 0.2 s fragments: measured at 12.5-60 fps), which makes the muxer cut
        # the first fragment at once, with the first frame alone. With a lead of one fragment it
        # came out only with the second frame: one more frame's model time and encode (at 1080p
        # 20-50 ms) before a client sees anything.
        self._lead = Fraction(fragment_seconds).limit_denominator(1000) + Fraction(
            4 * _AAC_FRAME, audio_rate
        )
        self._layout = "mono" if audio_channels == 1 else "stereo"
        self._sink = _SplitterSink()
        options = {
            "movflags": _MOVFLAGS,
            "frag_duration": str(max(1, int(fragment_seconds * 1_000_000))),
            # Packets are interleaved here already; do not let libavformat hold video back
            # waiting for audio (its default tolerance is 10 s, which would stall streaming).
            "max_interleave_delta": "1",
        }
        self._container = av.open(self._sink, mode="w", format="mp4", options=options)
        gop = keyframe_interval(self.fps, keyframe_seconds)
        self._video = self._container.add_stream(
            "libx264",
            rate=self.fps,
            options={
                "preset": preset,
                # Constant QP, not CRF: CRF's rate control carries state from frame to frame,
                # so the same frames encoded from another starting point come out different
                # (measured: 37-40 dB apart, range against full render, 320x320); with a fixed
                # QP each GOP is a function of its own frames alone, and a range re-render's
                # GOPs are the full render's, byte for byte (tests/unit/test_encoder.py).
                "qp": str(qp),
                "tune": "zerolatency",
                "profile": "high",
                # fixed GOP: x264's scene-cut keyframes would make fragment sizes erratic
                "sc_threshold": "0",
                "keyint_min": str(gop),
            },
        )
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = 1 / self.fps
        self._video.codec_context.gop_size = gop
        # Signal the matrix the YUV was made with (BT.709, limited range, unless the caller
        # passes a source's own YUV through: then its tags), so players that honour the tags
        # and players that assume HD defaults both show the right colours.
        cc = self._video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = colour.tags
        cc.color_range = 1  # limited (MPEG)
        # FFmpeg's own AAC encoder with its "fast" coder (one quantiser search) rather than
        # the default "twoloop": measured here on 9.5 s of speech at 128 kb/s, 0.25 -> 0.11
        # CPU-s (the twoloop coder was up to a third of a 512x512 avatar's server CPU);
        # waveform SNR 28.5 -> 45.4 dB, log-spectral distance 2.9 -> 3.3 dB (speech) and
        # 0.58 -> 0.17 dB (a drum loop). FFmpeg made it its default in 2018 because twoloop
        # "sounds worse at higher bitrates" (commit fcb681ac); 128 kb/s is high for a voice.
        self._audio = self._container.add_stream(
            "aac", rate=audio_rate, options={"aac_coder": "fast"}
        )
        self._audio.layout = self._layout
        self._audio.bit_rate = 128_000
        self._audio.time_base = Fraction(1, audio_rate)
        self._converter = Converter(colour)
        #: the last frame as packed I420, updated in place where frames change
        self._yuv: np.ndarray | None = None
        #: one picture for every frame, written in place (yuv.KeptPicture), and a packed I420
        #: frame a caller may patch before it is encoded (``staged``)
        self._picture: KeptPicture | None = None
        self._stage: np.ndarray | None = None
        self._frames = 0
        self._samples = 0  # audio samples sent to the AAC encoder
        #: timestamps of the first frame (frames) and of the first audio sample (samples)
        self._first_frame = start_frame
        self._first_sample = sample_at(start_frame, self.fps, audio_rate)
        self._pending = np.zeros((audio_channels, 0), np.float32)
        self._closed = False

    def add_video(
        self, frame_rgb: np.ndarray, changed: tuple[int, int, int, int] | None = None
    ) -> list[Segment]:
        """Encode one ``(height, width, 3)`` uint8 RGB frame.

        ``changed`` (x0, y0, x1, y1): the only pixels that differ from the previous frame.
        Only they are colour-converted (about 0.48 -> 0.18 ms per 512x512 frame for a face-sized
        region); the result is the same YUV, bit for bit (tests/unit/test_encoder.py).
        """
        self._check_open()
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                f"got {frame_rgb.shape} {frame_rgb.dtype}"
            )
        if changed is None or self._yuv is None:
            self._yuv = self._converter.to_i420(frame_rgb)
        else:
            self._converter.paste_rgb(self._yuv, frame_rgb, (0, 0), changed)
        return self._encode_i420(self._yuv)

    def prime(self, frame_rgb: np.ndarray) -> None:
        """The picture the first frame will change only part of (a portrait): converted now,
        ahead of it, so that frame's ``add_video(..., changed)`` converts only its region. The
        same video, bit for bit; at 1080p it takes ~20 ms off the first frame's encode."""
        self._check_open()
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame")
        if self._frames == 0:
            self._yuv = self._converter.to_i420(frame_rgb)

    def add_i420(self, i420: np.ndarray) -> list[Segment]:
        """Encode one packed I420 frame (``(height * 3 // 2, width)`` uint8, see media/yuv.py),
        made under this encoder's Colour: lipsync passes the source's own samples through."""
        self._check_open()
        if i420.shape != (self.height * 3 // 2, self.width) or i420.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height * 3 // 2}, {self.width}) uint8 I420 frame, "
                f"got {i420.shape} {i420.dtype}"
            )
        self._yuv = None  # the next add_video(changed=...) has no previous RGB frame to patch
        return self._encode_i420(i420)

    def staged(self, i420: np.ndarray) -> np.ndarray:
        """A copy of a packed I420 frame to patch before ``add_i420``: the same buffer every
        time (valid until the next call), so no frame-sized allocation per frame."""
        if self._stage is None:
            self._stage = np.empty_like(i420)
        self._stage[...] = i420
        return self._stage

    def _encode_i420(self, i420: np.ndarray) -> list[Segment]:
        # One picture kept for the whole stream (no frame-sized buffer per frame): x264 has
        # copied it into its own buffers by the time encode() returns. The bitstream is
        # byte-identical to a new picture per frame (tests/unit/test_encoder.py).
        if self._picture is None:
            self._picture = KeptPicture(self.width, self.height)
        frame = self._picture.write(*planes(i420, self.width, self.height))
        frame.pts = self._first_frame + self._frames
        self._frames += 1
        self._container.mux(self._video.encode(frame))
        self._encode_audio(limit=self._frames / self.fps + self._lead)
        return self._sink.take()

    def add_audio(self, pcm: np.ndarray) -> list[Segment]:
        """Queue ``(channels, n)`` float32 PCM at ``audio_rate``; muxed as the video catches up."""
        self._check_open()
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 2 or pcm.shape[0] != self.audio_channels:
            raise ValueError(f"expected ({self.audio_channels}, n) PCM, got shape {pcm.shape}")
        self._pending = np.concatenate([self._pending, pcm], axis=1)
        self._encode_audio(limit=self._frames / self.fps + self._lead)
        return self._sink.take()

    def close(self) -> list[Segment]:
        """Write the remaining audio, flush both encoders and return the last segments.

        Idempotent: later calls return an empty list.
        """
        if self._closed:
            return []
        self._closed = True
        try:
            self._encode_audio(limit=None)
            self._container.mux(self._video.encode(None))
            self._container.mux(self._audio.encode(None))
        finally:
            self._release()
        segments = self._sink.take() + self._sink.splitter.flush()
        log.debug("fMP4 closed: %d frames, %d audio samples", self._frames, self._samples)
        return segments

    def abort(self) -> None:
        """Drop the stream without flushing (a cancelled or failed call). Idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        # Closing the container does not free the codecs: x264's worker threads and frame
        # buffers live until the codec context objects are deallocated. Drop our references
        # now, so they go at once instead of whenever the garbage collector finds the cycle
        # a cancelled call left behind (measured: +4 threads per pending encoder).
        try:
            self._container.close()
        finally:
            # after close every call fails in _check_open, before it could touch these
            self._container = self._video = self._audio = self._converter = None  # type: ignore[assignment]
            self._yuv = self._picture = self._stage = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the encoder is closed")

    def _encode_audio(self, limit: Fraction | None) -> None:
        """Encode queued audio in AAC-frame-sized chunks up to ``limit`` seconds (all if None)."""
        available = self._pending.shape[1]
        if limit is None:
            count = available
        else:
            target = int(limit * self.audio_rate) - self._samples
            count = min(available, max(0, target)) // _AAC_FRAME * _AAC_FRAME
        position = 0
        while position < count:
            chunk = self._pending[:, position : position + _AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout=self._layout
            )
            frame.sample_rate = self.audio_rate
            frame.pts = self._first_sample + self._samples
            self._samples += chunk.shape[1]
            position += chunk.shape[1]
            self._container.mux(self._audio.encode(frame))
        if position:
            self._pending = self._pending[:, position:]
