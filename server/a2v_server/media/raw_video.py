"""A speaker video sent as uncompressed frames (a camera, a capture card, a renderer).

The frames are written to a Spool as they come, one after another at a fixed size, so frame i
is at ``i * frame_bytes``: random access (loop, bounce, remap) is a read at an offset, nothing
is decoded and nothing else is stored. Their times come with them (or are 1 / frame_rate
apart) and map to constant-rate slots by the same rule as a decoded video (media/video.py):
slot k shows the last frame whose time is before (k + 1/2) / rate. A slot is handed out once
the frame after it has arrived (or the video is complete), so a live source costs one frame
of latency, as with a decoder.

``add`` runs on the event loop (the input reader); ``open``, ``frame`` and ``count_slots``
block in worker threads, like ``SourceVideo``'s, which this class stands in for.
"""

from __future__ import annotations

import bisect
import math
import threading
from fractions import Fraction

import numpy as np
from av.video.reformatter import Colorspace

from a2v_server.domain import MAX_FPS, MIN_FPS, RawFrame
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media.spool import Spool
from a2v_server.media.video import Picture, VideoInfo
from a2v_server.media.yuv import Colour

_UNSPECIFIED = 2  # AVCOL_* "unspecified": the output is left untagged, as the input was
_FORMATS = ("i420", "rgb24")


class RawVideo:
    """Uncompressed frames in a Spool; see the module doc."""

    def __init__(self, spool: Spool, *, max_pixels: int, max_frames: int) -> None:
        self._spool = spool
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        self._lock = threading.Lock()
        self._format = ""
        self._width = self._height = 0
        self._rate = Fraction(0)
        self._frame_bytes = 0
        self._timed: bool | None = None  # frames carry times (decided by the second frame)
        self._last_us = 0
        #: the first slot each frame shows in (non-decreasing); appended before its bytes
        self._firsts: list[int] = []
        self.info: VideoInfo | None = None
        self.length: int | None = None
        self.decoded = 0  # frames read (the benchmark's and the tests' counter, as SourceVideo)
        self.seeks = 0
        #: as SourceVideo's (Summary.warnings); every raw frame is checked as it arrives
        self.damage: str | None = None

    # --- the writer's side (the event loop) -------------------------------------------------
    def add(self, frame: RawFrame) -> None:
        """Check one frame against the first and store it."""
        index = len(self._firsts)
        if index == 0:
            self._take_format(frame)
        else:
            self._check_same(frame, index)
        if len(frame.data) != self._frame_bytes:
            raise InvalidInput(
                f"raw video frame {index} holds {len(frame.data)} bytes; a {self._width}x"
                f"{self._height} {self._format.upper()} frame is {self._frame_bytes} bytes "
                "(tightly packed, no row padding)",
                field="video",
            )
        if index >= self._max_frames:
            raise ResourceExhausted(
                f"the raw video has over {self._max_frames} frames: send a shorter one",
                field="video",
            )
        first = self._first_slot(frame, index)
        self._firsts.append(first)
        self._spool.write(frame.data)  # after the append: a reader that sees the bytes sees it

    def _take_format(self, frame: RawFrame) -> None:
        if frame.format not in _FORMATS:
            raise InvalidInput(
                "the first raw video frame must name its format: I420 or RGB24 (format "
                f"{frame.format or 'unspecified'})",
                field="video",
            )
        w, h = frame.width, frame.height
        if w <= 0 or h <= 0:
            raise InvalidInput(
                "the first raw video frame must give its width and height", field="video"
            )
        if frame.format == "i420" and (w % 2 or h % 2):
            raise InvalidInput(
                f"an I420 frame has even sides; this one is {w}x{h}: crop a row or column",
                field="video",
            )
        if w * h > self._max_pixels:
            raise ResourceExhausted(
                f"the raw video is {w}x{h}; the limit is {self._max_pixels} pixels per frame: "
                "scale it down",
                field="video",
            )
        if not MIN_FPS <= frame.frame_rate <= MAX_FPS:
            raise InvalidInput(
                f"the first raw video frame must give the frame rate, {MIN_FPS} to {MAX_FPS} "
                f"fps (got {frame.frame_rate:g})",
                field="video",
            )
        self._format, self._width, self._height = frame.format, w, h
        self._rate = Fraction(frame.frame_rate).limit_denominator(1001)
        self._frame_bytes = w * h * 3 // 2 if frame.format == "i420" else w * h * 3

    def _check_same(self, frame: RawFrame, index: int) -> None:
        rate = float(self._rate)
        if frame.frame_rate and abs(frame.frame_rate - rate) <= 1e-3 * rate:
            rate = frame.frame_rate  # the same rate (29.97 given as 30000/1001 or 29.97)
        checks: tuple[tuple[str, object, object], ...] = (
            ("format", frame.format, self._format),
            ("width", frame.width, self._width),
            ("height", frame.height, self._height),
            ("frame_rate", frame.frame_rate, rate),
        )
        for name, value, first in checks:
            if value and value != first:
                raise InvalidInput(
                    f"raw video frame {index} changes the {name} from {first} to {value}: "
                    "every frame has the first frame's format, size and rate",
                    field="video",
                )

    def _first_slot(self, frame: RawFrame, index: int) -> int:
        if frame.time_us < 0:
            raise InvalidInput(
                f"raw video frame {index} has a negative time ({frame.time_us} us)", field="video"
            )
        if index == 0:
            return 0  # times count from the first frame's
        if self._timed is None:
            self._timed = frame.time_us > 0
        if not self._timed:
            if frame.time_us:
                raise InvalidInput(
                    f"raw video frame {index} has a time but frame 1 had none: give time_us on "
                    "every frame after the first, or on none",
                    field="video",
                )
            return index  # evenly spaced at the nominal rate
        if frame.time_us <= self._last_us:
            raise InvalidInput(
                f"raw video frame {index}'s time ({frame.time_us} us) is not after the one "
                f"before ({self._last_us} us): send frames in presentation order",
                field="video",
            )
        self._last_us = frame.time_us
        t = frame.time_us / 1e6
        return max(self._firsts[-1], math.floor(t * self._rate - 0.5 + 1e-9) + 1)

    # --- the readers' side (worker threads) ---------------------------------------------------
    def open(self) -> VideoInfo:
        """Waits for the first frame."""
        with self._lock:
            if self._frames_here(1) == 0:
                raise InvalidInput("the raw video ended before its first frame", field="video")
            colour = None
            if self._format == "i420":  # untagged: read as players guess
                matrix = Colorspace.ITU709 if self._height >= 720 else Colorspace.ITU601
                colour = Colour(matrix, (_UNSPECIFIED,) * 3)
            self.info = VideoInfo(self._rate, self._width, self._height, colour, 0)
            return self.info

    def frame(self, slot: int) -> Picture | None:
        """The picture of ``slot``, or None past the video's end; waits for the frame after it."""
        with self._lock:
            n = len(self._firsts) if self._spool.complete else 0
            while not self._spool.complete:
                n = self._frames_here(n + 1)
                if n and self._firsts[n - 1] > slot:
                    break
            if self._spool.complete:
                n = self._frames_here(len(self._firsts))
                self.length = self._firsts[n - 1] + 1 if n else 0
                if slot >= self.length:
                    return None
            index = bisect.bisect_right(self._firsts, slot, 0, n) - 1
            return self._read(index)

    def count_slots(self) -> int:
        """The slot count; blocks until the video is complete."""
        self._spool.wait_complete()
        with self._lock:
            n = self._frames_here(len(self._firsts))
            self.length = self._firsts[n - 1] + 1 if n else 0
            return self.length

    def close(self) -> None:
        pass  # the spool (the input's) is closed with the input

    def _frames_here(self, want: int) -> int:
        """Blocks until ``want`` frames have arrived or the video is complete; the count here."""
        size = self._spool.wait_for(want * self._frame_bytes if self._frame_bytes else 1)
        if not self._frame_bytes:  # complete before the first frame
            return 0
        return min(size // self._frame_bytes, len(self._firsts))

    def _read(self, index: int) -> Picture:
        data = self._spool.pread(self._frame_bytes, index * self._frame_bytes)
        self.decoded += 1
        if self._format == "i420":
            return Picture(i420=np.frombuffer(data, np.uint8).reshape(-1, self._width))
        return Picture(rgb=np.frombuffer(data, np.uint8).reshape(self._height, self._width, 3))
