"""Regrouping a fragmented MP4 byte stream into self-contained segments.

FFmpeg's mov muxer writes through an AVIO buffer, so one ``write()`` may hold half a box or
several boxes. ``Mp4BoxSplitter`` reassembles top-level boxes and emits:

* the init segment: everything up to and including ``moov`` (``ftyp`` + ``moov``);
* one fragment per ``moof`` + ``mdat``, including any ``styp``/``sidx``/``prft``/``emsg``/
  ``free`` boxes written just before the ``moof``.

The trailing ``mfra`` (random-access index FFmpeg writes at the end of a fragmented file) is
dropped: the last fragment has usually been sent already when it arrives, it is optional,
a streaming player never uses it, and the encoder disables it anyway (``skip_trailer``).
Concatenating the segments gives a valid, playable fragmented MP4.

Fragment times are those of the video track, in seconds of presentation time (the track's
edit list is applied), computed from ``tfdt`` and the ``trun`` sample durations (falling back
to the ``tfhd`` and ``trex`` default sample durations).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

log = logging.getLogger(__name__)

_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"mvex", b"moof", b"traf", b"edts"})


@dataclass(frozen=True)
class Segment:
    """A piece of fMP4 a player can append as a whole: ``kind`` is "init" or "fragment"."""

    kind: str
    data: bytes
    start_seconds: float
    end_seconds: float


@dataclass
class _Track:
    timescale: int = 0
    handler: bytes = b""
    default_duration: int = 0
    # presentation time = decode time - media_offset (ticks) + empty_edit (seconds)
    media_offset: int = 0
    empty_edit_seconds: float = 0.0


def _iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None):
    """Yield ``(type, payload_start, box_end)`` for complete child boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _children(data, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    found: dict[bytes, list[tuple[int, int]]] = {}
    for kind, body, box_end in _iter_boxes(data, start, end):
        found.setdefault(kind, []).append((body, box_end))
    return found


class Mp4BoxSplitter:
    """Feed arbitrary pieces of a fragmented MP4; get back complete init/fragment segments."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending = bytearray()  # boxes waiting for the box that completes their segment
        self._have_init = False
        self._have_moof = False
        self._tracks: dict[int, _Track] = {}
        self._video_id: int | None = None
        self._movie_timescale = 1000
        self._fragment_times: tuple[float, float] | None = None
        self._last_end = 0.0

    def feed(self, data: bytes) -> list[Segment]:
        """Add bytes written by the muxer; return the segments they complete (maybe none)."""
        self._buffer += data
        segments: list[Segment] = []
        while True:
            box = self._next_box()
            if box is None:
                return segments
            kind, raw = box
            segment = self._on_box(kind, raw)
            if segment is not None:
                segments.append(segment)

    def flush(self) -> list[Segment]:
        """Return what remains at the end of the stream (a final incomplete segment, if any)."""
        segments: list[Segment] = []
        if self._buffer:
            # A truncated last box cannot be parsed; keep its bytes with the rest.
            self._pending += self._buffer
            self._buffer.clear()
        if self._pending:
            if not self._have_init:
                segments.append(Segment("init", bytes(self._pending), 0.0, 0.0))
            elif self._have_moof:
                start, end = self._fragment_times or (self._last_end, self._last_end)
                segments.append(Segment("fragment", bytes(self._pending), start, end))
            else:
                log.debug("dropping %d trailing bytes after the last fragment", len(self._pending))
            self._pending.clear()
            self._have_moof = False
        return segments

    def _next_box(self) -> tuple[bytes, bytes] | None:
        buf = self._buffer
        if len(buf) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", buf, 0)
        header = 8
        if size == 1:
            if len(buf) < 16:
                return None
            (size,) = struct.unpack_from(">Q", buf, 8)
            header = 16
        elif size == 0:
            return None  # "extends to the end of the file": only known at flush()
        if size < header:
            raise ValueError(f"invalid MP4 box size {size} for {kind!r}")
        if len(buf) < size:
            return None
        raw = bytes(buf[:size])
        del buf[:size]
        return kind, raw

    def _on_box(self, kind: bytes, raw: bytes) -> Segment | None:
        if kind == b"mfra":
            log.debug("dropping the mfra index (%d bytes)", len(raw))
            return None
        self._pending += raw
        if not self._have_init:
            if kind == b"moov":
                self._parse_moov(raw)
                self._have_init = True
                return self._take("init", 0.0, 0.0)
            return None
        if kind == b"moof":
            self._have_moof = True
            self._fragment_times = self._parse_moof(raw)
        elif kind == b"mdat" and self._have_moof:
            start, end = self._fragment_times or (self._last_end, self._last_end)
            self._have_moof = False
            return self._take("fragment", start, end)
        return None

    def _take(self, kind: str, start: float, end: float) -> Segment:
        segment = Segment(kind, bytes(self._pending), start, end)
        self._pending.clear()
        return segment

    def _parse_moov(self, raw: bytes) -> None:
        top = _children(raw, 8, len(raw))
        for body, _ in top.get(b"mvhd", []):
            version = raw[body]
            self._movie_timescale = struct.unpack_from(">I", raw, body + (20 if version else 12))[0]
        for body, end in top.get(b"trak", []):
            self._parse_trak(raw, body, end)
        for body, end in top.get(b"mvex", []):
            for trex, _ in _children(raw, body, end).get(b"trex", []):
                track_id, _desc, duration = struct.unpack_from(">III", raw, trex + 4)
                self._tracks.setdefault(track_id, _Track()).default_duration = duration
        videos = [tid for tid, t in self._tracks.items() if t.handler == b"vide"]
        self._video_id = videos[0] if videos else min(self._tracks, default=None)

    def _parse_trak(self, raw: bytes, start: int, end: int) -> None:
        boxes = _children(raw, start, end)
        if b"tkhd" not in boxes or b"mdia" not in boxes:
            return
        tkhd = boxes[b"tkhd"][0][0]
        track_id = struct.unpack_from(">I", raw, tkhd + (20 if raw[tkhd] else 12))[0]
        track = self._tracks.setdefault(track_id, _Track())
        mdia = _children(raw, *boxes[b"mdia"][0])
        if b"mdhd" in mdia:
            mdhd = mdia[b"mdhd"][0][0]
            track.timescale = struct.unpack_from(">I", raw, mdhd + (20 if raw[mdhd] else 12))[0]
        if b"hdlr" in mdia:
            hdlr = mdia[b"hdlr"][0][0]
            track.handler = raw[hdlr + 8 : hdlr + 12]
        for edts in boxes.get(b"edts", []):
            for elst, _ in _children(raw, *edts).get(b"elst", []):
                self._parse_elst(raw, elst, track)

    def _parse_elst(self, raw: bytes, body: int, track: _Track) -> None:
        version = raw[body]
        (count,) = struct.unpack_from(">I", raw, body + 4)
        entry = ">Qq" if version else ">Ii"
        step = 20 if version else 12
        for i in range(count):
            duration, media_time = struct.unpack_from(entry, raw, body + 8 + i * step)
            if media_time == -1:  # empty edit: the track starts later
                track.empty_edit_seconds += duration / max(self._movie_timescale, 1)
            else:
                track.media_offset = media_time
                break

    def _parse_moof(self, raw: bytes) -> tuple[float, float] | None:
        for body, end in _children(raw, 8, len(raw)).get(b"traf", []):
            times = self._parse_traf(raw, body, end)
            if times is not None:
                self._last_end = times[1]
                return times
        # A fragment without video samples (e.g. trailing audio) has an empty video range.
        return self._last_end, self._last_end

    def _parse_traf(self, raw: bytes, start: int, end: int) -> tuple[float, float] | None:
        boxes = _children(raw, start, end)
        if b"tfhd" not in boxes:
            return None
        tfhd = boxes[b"tfhd"][0][0]
        flags, track_id = struct.unpack_from(">II", raw, tfhd)
        if track_id != self._video_id:
            return None
        track = self._tracks.get(track_id, _Track())
        default_duration = track.default_duration
        offset = tfhd + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        if flags & 0x08:
            (default_duration,) = struct.unpack_from(">I", raw, offset)
        base = 0
        if b"tfdt" in boxes:
            tfdt = boxes[b"tfdt"][0][0]
            base = struct.unpack_from(">Q" if raw[tfdt] else ">I", raw, tfdt + 4)[0]
        total = sum(
            self._trun_duration(raw, body, default_duration) for body, _ in boxes.get(b"trun", [])
        )
        scale = track.timescale or 1
        first = (base - track.media_offset) / scale + track.empty_edit_seconds
        return first, first + total / scale

    @staticmethod
    def _trun_duration(raw: bytes, body: int, default_duration: int) -> int:
        flags, count = struct.unpack_from(">II", raw, body)
        pos = body + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
        if not flags & 0x100:
            return count * default_duration
        per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
        return sum(struct.unpack_from(">I", raw, pos + i * per_sample)[0] for i in range(count))
