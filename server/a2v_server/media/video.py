"""Speaker videos for lipsync: spool the upload, decode to constant-rate frames, map time.

The upload is spooled to a temporary file (a video can be far larger than memory should hold),
then decoded once with PyAV through an allowlisted demuxer. Frames are fitted to the output
size by the caller and kept in a disk-backed array, so lipsync modes that revisit frames
(loop, bounce) need no second decode and memory stays flat whatever the video's length.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from a2v_server.domain import MAX_FPS, MIN_FPS
from a2v_server.errors import InvalidInput, ResourceExhausted

log = logging.getLogger(__name__)

ACCEPTED_VIDEO_FORMATS = "MP4, MOV or WebM/Matroska"


def detect_video_format(head: bytes) -> str:
    """The FFmpeg demuxer for these leading bytes, from an allowlist."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "mov"  # mov,mp4,m4a,3gp demuxer
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # also WebM
    raise InvalidInput(
        f"the video is not in a supported format: send {ACCEPTED_VIDEO_FORMATS}", field="video"
    )


class VideoUpload:
    """Collects the uploaded bytes in a temporary file (deleted on close)."""

    def __init__(self, max_bytes: int) -> None:
        self._file = tempfile.TemporaryFile(prefix="a2v-video-")  # noqa: SIM115 - closed in close()
        self._size = 0
        self._max = max_bytes

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._max:
            raise ResourceExhausted(
                f"the video is larger than {self._max} bytes: send a shorter or more "
                "compressed clip",
                field="video",
            )
        self._file.write(data)

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()

    def frames(
        self, *, max_frames: int, max_pixels: int
    ) -> tuple[Fraction, int, Iterator[np.ndarray]]:
        """(frame rate, frame count, RGB frames at a constant rate).

        Variable-frame-rate video is resampled to its average rate by presentation time:
        each output slot k shows the last frame whose timestamp is <= k / rate.
        """
        if self._size == 0:
            raise InvalidInput("the video is empty", field="video")
        self._file.seek(0)
        fmt = detect_video_format(self._file.read(16))
        self._file.seek(0)
        try:
            # Tags are user bytes too: undecodable text must not fail the open.
            container = av.open(self._file, format=fmt, mode="r", metadata_errors="replace")
        except (av.error.FFmpegError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise InvalidInput(
                f"could not read the video: corrupt or truncated {fmt} data ({reason}); send a "
                f"complete {ACCEPTED_VIDEO_FORMATS} file",
                field="video",
            ) from None
        try:
            if not container.streams.video:
                raise InvalidInput(
                    "the video file has no video stream (audio only?): send a video of the "
                    f"speaker ({ACCEPTED_VIDEO_FORMATS})",
                    field="video",
                )
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.width * stream.height > max_pixels:
                raise ResourceExhausted(
                    f"the video is {stream.width}x{stream.height}; the limit is "
                    f"{max_pixels} pixels per frame: scale it down",
                    field="video",
                )
            rate = _frame_rate(stream)
            duration = _duration(container, stream)
            count = max(1, round(duration * rate)) if duration else 0
            if count > max_frames:
                raise ResourceExhausted(
                    f"the video has about {count} frames; the limit is {max_frames}: trim it",
                    field="video",
                )
        except BaseException:
            container.close()
            raise
        return rate, count, _cfr_frames(container, stream, rate, max_frames)


def _frame_rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    rate = Fraction(rate).limit_denominator(1001)
    if not MIN_FPS <= rate <= MAX_FPS:
        raise InvalidInput(
            f"the video's frame rate {float(rate):.3g} is outside {MIN_FPS}..{MAX_FPS} fps",
            field="video",
        )
    return rate


def _duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _cfr_frames(container, stream, rate: Fraction, max_frames: int) -> Iterator[np.ndarray]:
    """Decode and resample to ``rate``; closes the container when done."""
    slot = 0
    previous: np.ndarray | None = None
    start: float | None = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base)
            start = t if start is None else start
            t -= start
            image = frame.to_ndarray(format="rgb24")
            # Emit the previous frame for every slot that starts before this frame.
            while previous is not None and slot / rate <= t - 0.5 / float(rate):
                yield previous
                slot += 1
                if slot >= max_frames:
                    return
            previous = image
        if previous is not None:
            yield previous
    except av.error.FFmpegError as exc:
        if previous is None:
            raise InvalidInput(f"could not decode the video: {exc}", field="video") from None
        log.warning("video decoding stopped early: %s", exc)
        if previous is not None:
            yield previous
    finally:
        container.close()


class FrameStore:
    """Fitted frames in a disk-backed array, addressed by source index."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self._shape = shape
        self._file = tempfile.TemporaryFile(prefix="a2v-frames-")  # noqa: SIM115 - closed in close()
        self.count = 0
        self._map: np.memmap | None = None

    def fill(self, frames: Iterator[np.ndarray], fit: Callable[[np.ndarray], np.ndarray]) -> None:
        h, w = self._shape
        for frame in frames:
            fitted = np.ascontiguousarray(fit(frame), dtype=np.uint8)
            assert fitted.shape == (h, w, 3)
            self._file.write(fitted.tobytes())
            self.count += 1
        if self.count == 0:
            raise InvalidInput("the video contains no frames", field="video")
        self._file.flush()
        self._map = np.memmap(self._file, dtype=np.uint8, mode="r", shape=(self.count, h, w, 3))

    def __getitem__(self, index: int) -> np.ndarray:
        assert self._map is not None
        return np.asarray(self._map[index])

    def close(self) -> None:
        self._map = None
        self._file.close()
