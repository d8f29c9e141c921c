"""Speaker videos for lipsync: spool the upload, decode to constant-rate frames, map time.

The upload is spooled to a temporary file (a video can be far larger than memory should hold),
then decoded once with PyAV through an allowlisted demuxer. Frames are fitted to the output
size by the caller and kept in a disk-backed array, so lipsync modes that revisit frames
(loop, bounce) need no second decode and memory stays flat whatever the video's length.

Frames come out as a player shows them: the display matrix (a phone's rotation, any mirroring)
is applied, so the output takes the displayed orientation. The decoder is bounded by the pixel
limit on its codec context, and every decoded frame is checked, whatever the container said.
"""

from __future__ import annotations

import logging
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import cast

import av
import cv2
import numpy as np
from av.sidedata.sidedata import SideData
from av.sidedata.sidedata import Type as SideDataType

from a2v_server.domain import MAX_FPS, MIN_FPS
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media.orientation import (
    UPRIGHT,
    apply_orientation,
    orientation_from_display_matrix,
    orientation_from_rotation,
)

log = logging.getLogger(__name__)

ACCEPTED_VIDEO_FORMATS = "MP4, MOV or WebM/Matroska"
_FORMAT_NAMES = {"mov": "MP4/MOV", "matroska": "WebM/Matroska"}


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
        # max_pixels bounds the decoders too: those that probe the streams while the container
        # opens, and the one that decodes (its codec context), whatever the headers claim.
        limit = {"max_pixels": str(max_pixels)}
        try:
            # Tags are user bytes too: undecodable text must not fail the open.
            container = av.open(
                self._file, format=fmt, mode="r", options=limit, metadata_errors="replace"
            )
        except (av.error.FFmpegError, ValueError) as exc:
            log.info("video open failed (%s): %s", fmt, exc)
            raise InvalidInput(
                f"could not read the video: the {_FORMAT_NAMES[fmt]} file is corrupt or "
                f"truncated; send a complete {ACCEPTED_VIDEO_FORMATS} file",
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
            stream.codec_context.options = dict(limit)
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
        return rate, count, _cfr_frames(container, stream, rate, max_frames, max_pixels)


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


def _cfr_frames(
    container, stream, rate: Fraction, max_frames: int, max_pixels: int
) -> Iterator[np.ndarray]:
    """Decode, turn upright and resample to ``rate``; closes the container when done."""
    slot = 0
    previous: np.ndarray | None = None
    start: float | None = None
    upright = _Upright(max_pixels)
    decoded = 0
    try:
        for frame in container.decode(stream):
            decoded += 1
            if decoded > 2 * max_frames:  # timestamps that never advance: stop decoding
                log.warning("video: %d frames decoded for %d slots; stopping", decoded, slot)
                break
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base)
            start = t if start is None else start
            t -= start
            image = upright(frame)
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
        log.warning("video decoding stopped (%s): %s", stream.codec_context.name, exc)
        if previous is None:
            raise InvalidInput(
                "could not read the video: its pictures could not be decoded (corrupt data or "
                f"an unsupported codec); send a complete {ACCEPTED_VIDEO_FORMATS} file (H.264 "
                "plays everywhere)",
                field="video",
            ) from None
        yield previous
    finally:
        container.close()


class _Upright:
    """Decoded frames as RGB arrays the way a player shows them, all of the first one's size.

    The orientation comes from the first frame's display matrix (the container's, or the
    codec's display-orientation message) and holds for the whole video, so every frame has the
    same shape; a stream that changes its coded size midway is scaled back to the first size.
    """

    def __init__(self, max_pixels: int) -> None:
        self._max_pixels = max_pixels
        self._orientation: int | None = None
        self._shape: tuple[int, ...] | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if frame.width * frame.height > self._max_pixels:
            raise ResourceExhausted(
                f"the video has a {frame.width}x{frame.height} frame; the limit is "
                f"{self._max_pixels} pixels per frame: scale it down",
                field="video",
            )
        if self._orientation is None:
            self._orientation = _orientation(frame)
            if self._orientation != UPRIGHT:
                log.info("video display orientation %d applied", self._orientation)
        image = apply_orientation(frame.to_ndarray(format="rgb24"), self._orientation)
        if self._shape is None:
            self._shape = image.shape
        elif image.shape != self._shape:
            height, width = self._shape[:2]
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image


def _orientation(frame: av.VideoFrame) -> int:
    """The EXIF code of a frame's display matrix (rotation and mirroring), 1 without one."""
    try:
        # (PyAV's stub types the container as one SideData: it is a mapping of them)
        side_data = cast("list[SideData]", list(cast("Iterable[SideData]", frame.side_data)))
    except ValueError:
        # PyAV names side data with an enum that lacks types newer than it (EXIF, LCEVC, ...):
        # then only the rotation angle can be read, not a mirroring.
        log.info("video frame side data unreadable; applying its rotation only")
        return orientation_from_rotation(frame.rotation)
    for item in side_data:
        if item.type == SideDataType.DISPLAYMATRIX and item.buffer_size >= 36:
            return orientation_from_display_matrix(struct.unpack("=9i", bytes(item)[:36]))
    return UPRIGHT


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
