"""Speaker videos for lipsync: decoded while they arrive, frame by frame, at a constant rate.

The upload is a Spool (media/spool.py): bytes go to a temporary file as they arrive and are
decoded at the same time, so lipsync starts on a video's first second. A ``SourceVideo`` hands
out frames by *slot*, the index of a frame at the video's constant average rate: slot k shows
the last frame whose presentation time is before (k + 1/2) / rate, so a variable-frame-rate
video keeps its timing. Nothing is stored raw: the first pass decodes in order as the bytes
come; a slot behind it (loop, bounce, remap) is found by seeking in the compressed upload to
the keyframe before it and decoding forward, and a small cache of recent pictures (bounded in
bytes) serves backward play and revisits. Memory is flat, temporary disk is the upload.

Frames come out as a player shows them: the display matrix (a phone's rotation, any mirroring)
is applied, and non-square pixels (a sample aspect ratio other than 1:1: DV, HDV, some
broadcast files) are scaled to square ones at the displayed shape (720x576 at 16:15 comes out
768x576; 1440x1080 at 4:3, 1920x1080). Where the decoded samples are 8-bit 4:2:0 at limited
range (nearly every camera and encoder), they are kept as they are (I420, media/yuv.py) and
only the face is ever converted; other YUV (10-bit, 4:2:2, 4:4:4, full range) is converted
once to that as it is decoded, HDR made SDR as a screen shows it (media/hdr.py), and RGB
formats come out as RGB. A short clip is kept whole in the cache (WHOLE_CLIP_CACHE_BYTES). The
decoder is bounded by the pixel limit on its codec context, and every decoded frame is
checked, whatever the container said.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import struct
import threading
from collections import OrderedDict, deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import cv2
import numpy as np
from av.sidedata.sidedata import SideData
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import Colorspace, VideoReformatter

from a2v_server.domain import MAX_FPS, MIN_FPS
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media.filters import filter_chain
from a2v_server.media.hdr import ToSdr, hdr_of
from a2v_server.media.orientation import (
    UPRIGHT,
    apply_orientation,
    orientation_from_display_matrix,
    orientation_from_rotation,
    swaps_sides,
)
from a2v_server.media.spool import Spool
from a2v_server.media.yuv import (
    BT709,
    Colour,
    colour_of,
    converted_colour,
    pack,
    sampling_of,
    to_kept,
)

log = logging.getLogger(__name__)

#: codecs decoded on one thread up to FRAME_THREADS_ABOVE: their slice-level threads (HEVC's
#: wavefronts, VP9's and AV1's tiles) cost CPU to keep in step, which a 2-core server shares
#: with the encoder and the model. Decoding a 10 s 1080p clip (2-core EPYC), CPU with two
#: threads -> one: HEVC 2.41 -> 1.89 s, a phone's 12 Mbit/s HLG HEVC 5.29 -> 4.17 s, VP9
#: 1.83 -> 1.57 s, AV1 1.09 -> 0.93 s; H.264 1.33 -> 1.34 s, so it keeps its threads (they
#: halve its decoding's wall time). Lipsync uploads, interleaved A/B, 3 pairs each: HEVC
#: 6.41 -> 6.17 s, the HLG clip 12.44 -> 11.94 s.
ONE_THREAD_CODECS = frozenset({"hevc", "vp9", "libdav1d", "av1"})
#: a speaker video may hold at most this many frames (10 minutes at 60 fps)
MAX_VIDEO_FRAMES = 36_000
#: decoded pictures kept for revisits and backward play (bytes): ~40 frames at 1080p
CACHE_BYTES = 128 * 1024 * 1024
#: ... and up to this much where the whole clip fits in it (the header's frame count at the
#: pictures' size): a short clip under longer speech (loop, bounce: what the canvas does with a
#: few seconds of a speaker) is then decoded once. With CACHE_BYTES, bounce decoded a 3 s clip
#: at 1080p twice over: the bench's 4K phone clip under 10 s of speech took 9.5 s and 14.7 s of
#: the server's CPU; with the whole clip kept, 7.5 s and 10.6 s (2-core EPYC, interleaved runs).
#: A longer clip keeps CACHE_BYTES: more would not hold it, and memory stays as it was.
WHOLE_CLIP_CACHE_BYTES = 256 * 1024 * 1024
#: videos with more pixels than this (1080p's coded 1920x1088) decode with frame threads
FRAME_THREADS_ABOVE = 1920 * 1088
#: a slot at most this many slots ahead of the seeking pass is reached by decoding on, not by
#: another seek
SEEK_AHEAD = 48
#: a video whose pictures end more than this share (and 2 frames) short of what its track's
#: header declares was cut off: Summary.warnings says so (edit lists and rounding differ by
#: a frame or two; a camera's header by nothing)
DAMAGE_SLACK = 0.02

ACCEPTED_VIDEO_FORMATS = "MP4, MOV or WebM/Matroska"
_FORMAT_NAMES = {"mov": "MP4/MOV", "matroska": "WebM/Matroska"}


#: sample aspect ratios beyond this either way are a broken header, not a camera's (DV's widest
#: is 64:45, anamorphic 2x lenses' 2:1)
MAX_SAMPLE_ASPECT = 4


def detect_video_format(head: bytes) -> str:
    """The FFmpeg demuxer for these leading bytes, from an allowlist."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "mov"  # mov,mp4,m4a,3gp demuxer
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # also WebM
    raise InvalidInput(
        f"the video is not in a supported format: send {ACCEPTED_VIDEO_FORMATS}", field="video"
    )


def _frame_rate(stream) -> tuple[Fraction, Fraction, int]:
    """(the clip's rate, the file's, the step between the pictures shown): a video above
    MAX_FPS (a phone's 120 or 240 fps) plays at its rate divided by the smallest whole number
    that brings it within (120 -> 60, 240 -> 60, 100 -> 50): every step-th picture, evenly
    spaced, its timing kept."""
    source = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    source = Fraction(source).limit_denominator(1001)
    if source < MIN_FPS:
        raise InvalidInput(
            f"the video's frame rate {float(source):.3g} fps is below {MIN_FPS} fps: a mouth "
            f"cannot move at that rate; re-encode it at {MIN_FPS}..{MAX_FPS} fps (25 is usual)",
            field="video",
        )
    step = math.ceil(source / MAX_FPS)
    return source / step, source, step


def _duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


@dataclass(frozen=True)
class Picture:
    """One source frame, upright: its I420 samples as decoded (width and height cut to even)
    when they can be kept, else RGB at the video's full size."""

    i420: np.ndarray | None = None
    rgb: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        if self.i420 is not None:
            return self.i420.shape[1], self.i420.shape[0] * 2 // 3
        assert self.rgb is not None
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.i420, self.rgb) if a is not None)


@dataclass(frozen=True)
class VideoInfo:
    rate: Fraction
    #: the upright (displayed) size
    width: int
    height: int
    #: the colour under which decoded I420 is kept (None: the pictures are RGB)
    colour: Colour | None
    #: the frame count the header claims (0 when it does not say)
    header_frames: int
    #: the file's own frame rate where the clip plays at a lower one (above MAX_FPS); None
    #: when the clip keeps it
    source_rate: Fraction | None = None
    #: "PQ" / "HLG" (HDR) or "BT.2020" (wide gamut) where the pictures are converted to SDR
    #: BT.709 (ToSdr); None for SDR video
    hdr: str | None = None
    #: the sample aspect ratio and the upright stored size where the pixels are not square
    #: (the pictures come out in square ones, at width x height); None where they are
    non_square: tuple[Fraction, tuple[int, int]] | None = None
    #: the first picture was interlaced (two fields of different instants woven): the
    #: pictures are deinterlaced (``Deinterlacer``)
    interlaced: bool = False
    #: the first picture's sampling ("10-bit 4:2:2", "8-bit 4:2:0 full range") where the
    #: pictures are converted to 8-bit 4:2:0 limited range (``yuv.converted_colour``)
    converted: str | None = None


class SourceVideo:
    """A speaker video decoded on demand by slot. ``open()`` and ``frame()`` block (waiting for
    bytes, decoding): call them from a worker thread, one at a time (a lock guards them)."""

    def __init__(
        self,
        spool: Spool,
        *,
        max_pixels: int,
        max_frames: int,
        cache_bytes: int | None = None,
    ) -> None:
        self._spool = spool
        self._max_pixels = max_pixels
        self._max_frames = max_frames
        #: a fixed budget (``cache_bytes``), else ``_size_cache`` sets it from the clip
        self._cache_fixed = cache_bytes
        self._cache_limit = CACHE_BYTES if cache_bytes is None else cache_bytes
        self._cache: OrderedDict[int, Picture] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()
        self._format = ""
        self._first: _Pass | None = None  # decoding in order, as the bytes arrive
        self._seeker: tuple[av.container.InputContainer, av.video.stream.VideoStream] | None = None
        self._seek_pass: _Pass | None = None
        self._shape: _Shape | None = None
        #: converts HDR pictures (set up ahead while the first one decodes: open)
        self._to_sdr = ToSdr()
        self._t0 = 0.0
        self.info: VideoInfo | None = None
        #: the slot count, once the first pass reached the end
        self.length: int | None = None
        self._counted: int | None = None  # ... or from the packets (count_slots)
        self.decoded = 0  # pictures decoded, all passes (for the benchmark and the tests)
        self.seeks = 0
        #: once the first pass has ended: where the data ended early (a cut-off upload,
        #: corrupt bytes), for Summary.warnings ("field: why"); None when nothing is wrong
        self.damage: str | None = None
        self._broken = False  # the first pass stopped on a decoding error
        self._track_frames = 0  # the frames the video track's own header declares (0: none)
        self._step = 1  # pictures decoded per slot (_frame_rate: above MAX_FPS)
        self._stream: av.video.stream.VideoStream | None = None  # the first pass's
        self.interlaced = False  # a picture was deinterlaced (Deinterlacer)

    # --- opening --------------------------------------------------------------------------------
    def open(self) -> VideoInfo:
        with self._lock:
            head = self._spool.head(16)
            if not head:
                raise InvalidInput(
                    "the speaker video is missing: its video messages held no bytes; send the "
                    f"file ({ACCEPTED_VIDEO_FORMATS}) in video messages before the audio",
                    field="video",
                )
            self._format = detect_video_format(head)
            if self._format == "mov" and self._spool.moov_at_end():
                # The index comes after the media: nothing can be decoded before the last byte.
                self._spool.wait_complete()
                reader = self._spool.seekable()
            else:
                reader = self._spool.streaming()
            container, stream = self._open(reader)
            self._stream = stream  # (its sample aspect ratio: _picture)
            # an HDR video's conversion is set up while its first picture decodes
            self._to_sdr.prepare(stream.codec_context)
            try:
                rate, source_rate, self._step = _frame_rate(stream)
                duration = _duration(container, stream)
                count = max(1, round(duration * rate)) if duration else 0
                # the video track's own length: its header's, or the file's when it holds no
                # other track (WebM keeps one duration for all of them)
                if (stream.duration and stream.time_base) or len(container.streams) == 1:
                    self._track_frames = count
                if count > self._max_frames:
                    raise ResourceExhausted(
                        f"the video has about {count} frames; the limit is "
                        f"{self._max_frames}: trim it",
                        field="video",
                    )
                self._first = _Pass(self, container, stream, rate, start=None)
                first = self._first.next()
            except BaseException:
                container.close()
                raise
            if first is None:
                raise InvalidInput("the video contains no frames", field="video")
            assert self._shape is not None
            self._remember(*first)
            self.info = VideoInfo(
                rate,
                self._shape.width,
                self._shape.height,
                self._shape.colour,
                count,
                source_rate if self._step > 1 else None,
                self._shape.hdr,
                self._shape.non_square,
                self.interlaced,
                self._shape.converted,
            )
            self._size_cache()
            return self.info

    def _open(self, reader) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        # max_pixels bounds the decoders too: those that probe the streams while the container
        # opens, and the one that decodes (its codec context), whatever the headers claim.
        limit = {"max_pixels": str(self._max_pixels)}
        # Stream analysis reads as little as it can (FFmpeg's defaults: 5 s and 5 MB): the
        # container's header names the codec, so the first frame is out as soon as its own
        # bytes have arrived (measured: the first 109 KB of a 1.4 MB, 10 s 720p live fMP4,
        # against 207 KB with the defaults), not after seconds of a live camera's stream.
        # The probing decoders decode nothing (skip_frame): the container names the size, format
        # and timing, and what is decoded is decoded again below; FFmpeg would otherwise decode
        # the first picture once more just to look at it (H.264's decode delay), single-
        # threaded: 220 ms of a grainy 4K I-frame here, before the first chunk could start.
        options = {
            **limit,
            "analyzeduration": "1000000",
            "probesize": "65536",
            "skip_frame": "all",
        }
        try:
            # Tags are user bytes too: undecodable text must not fail the open.
            container = av.open(
                reader, format=self._format, mode="r", options=options, metadata_errors="replace"
            )
        except (av.error.FFmpegError, ValueError) as exc:
            log.info("video open failed (%s): %s", self._format, exc)
            raise InvalidInput(
                f"could not read the video: the {_FORMAT_NAMES[self._format]} file is corrupt "
                f"or truncated; send a complete {ACCEPTED_VIDEO_FORMATS} file",
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
            # Slice threads, not frame threads: frame threading holds each picture back by a
            # frame per thread, latency a live camera pays end to end (720p live fMP4: p50
            # 420 -> 350 ms, max 545 -> 440-480 ms). Uploads did not get slower on 2 cores
            # (720p 6.50 -> 6.47 s, 1080p 12.6 -> 11.8 s): decoding is a small share there.
            # Above 1080p (a 4K phone video) frame threads all the same: a 4K H.264 picture
            # took 39 ms on one thread here, 23 ms on two (6 s of speech on a 3 s 4K clip at
            # 40 Mbit/s: 7.7 -> 6.6 s, first chunk 0.95 -> 0.83 s); a live 4K camera pays a
            # picture's latency for it.
            big = stream.width * stream.height > FRAME_THREADS_ABOVE
            stream.thread_type = "FRAME" if big else "SLICE"
            if not big and stream.codec_context.name in ONE_THREAD_CODECS:
                stream.thread_count = 1
            stream.codec_context.options = dict(limit)
            if stream.width * stream.height > self._max_pixels:
                raise ResourceExhausted(
                    f"the video is {stream.width}x{stream.height}; the limit is "
                    f"{self._max_pixels} pixels per frame: scale it down",
                    field="video",
                )
        except BaseException:
            container.close()
            raise
        return container, stream

    # --- frames by slot -------------------------------------------------------------------------
    def frame(self, slot: int) -> Picture | None:
        """The picture of ``slot``, or None past the video's end."""
        with self._lock:
            if self.length is not None and slot >= self.length:
                return None
            cached = self._cache.get(slot)
            if cached is not None:
                self._cache.move_to_end(slot)
                return cached
            first = self._first
            if first is not None and not first.done and slot >= first.next_slot:
                while (item := first.next()) is not None:
                    picture = self._remember(*item)
                    if item[0] == slot:
                        return picture
                self._end_first_pass()
                return None
            return self._seek_to(slot)

    def decode_at(self, width: int, height: int) -> VideoInfo:
        """From now on, every picture comes out at ``width`` x ``height`` (upright, even
        sides): a source larger than its output is scaled where it is decoded (swscale's area
        filter on its own YUV planes), not converted to RGB at its full size and fitted after.
        The pictures already decoded (the face probe's) are scaled the same way. Returns the
        new ``info``; the clip's timing is unchanged.

        A 4K phone video under a 1080p output: 4K pictures cost 4x the memory of the cache
        (CACHE_BYTES: ~10 of them, so backward play decoded its groups of pictures again),
        a 4K RGB conversion and an area resize of it per frame; now the cache holds 1080p
        pictures and the output is the decoded samples, scaled once."""
        with self._lock:
            assert self._shape is not None and self.info is not None
            width, height = max(2, width - width % 2), max(2, height - height % 2)
            if (width, height) == (self._shape.width, self._shape.height):
                return self.info
            self._shape.scale_to(width, height)
            for slot, picture in list(self._cache.items()):
                self._cache_bytes -= picture.nbytes
                self._cache[slot] = scaled = self._shape.scaled(picture)
                self._cache_bytes += scaled.nbytes
            self.info = dataclasses.replace(self.info, width=width, height=height)
            self._size_cache()
            return self.info

    def count_slots(self) -> int:
        """The slot count, without decoding: from the packets' timestamps when the first pass
        has not reached the end yet (blocks until the upload is complete)."""
        with self._lock:
            if self.length is not None:
                return self.length
            if self._counted is not None:
                return self._counted
            container, stream = self._seeking()
            if self._seek_pass is not None:  # the demuxing below moves the seeking container
                self._seek_pass.close()
                self._seek_pass = None
            times = []
            container.seek(0, stream=stream, backward=True)
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    times.append(float(packet.pts * packet.time_base) - self._t0)
            assert self.info is not None
            slots = _slots(((t, None) for t in sorted(times)), self.info.rate, self._max_frames)
            # once: remap asks for every frame it sends
            self._counted = max((k for k, _ in slots), default=0) + 1
            return self._counted

    def close(self) -> None:
        with self._lock:
            for run in (self._first, self._seek_pass):
                if run is not None:
                    run.close()
            for container in (
                self._first.container if self._first else None,
                self._seeker[0] if self._seeker else None,
            ):
                if container is not None:
                    container.close()
            self._first = self._seek_pass = None
            self._seeker = None
            self._cache.clear()
            self._cache_bytes = 0
            self._to_sdr.close()

    # --- internals ------------------------------------------------------------------------------
    def _size_cache(self) -> None:
        """The cache's budget: WHOLE_CLIP_CACHE_BYTES where the whole clip fits in it (the
        header's frame count at the size of the pictures now), else CACHE_BYTES."""
        if self._cache_fixed is not None or not self._cache:
            return
        assert self.info is not None
        clip = self.info.header_frames * next(iter(self._cache.values())).nbytes
        whole = 0 < clip <= WHOLE_CLIP_CACHE_BYTES
        self._cache_limit = WHOLE_CLIP_CACHE_BYTES if whole else CACHE_BYTES

    def _end_first_pass(self) -> None:
        first = self._first
        assert first is not None
        self.length = first.next_slot
        first.container.close()
        if self.length == 0:
            raise InvalidInput("the video contains no frames", field="video")
        self.damage = self._damage()

    def _damage(self) -> str | None:
        """Summary.warnings' entry when the first pass ended early: on a decoding error, or
        (cut at a packet's end, which decodes cleanly) short of what the video track's header
        declares by more than a few frames (DAMAGE_SLACK)."""
        assert self.info is not None and self.length is not None
        declared, rate = self._track_frames, float(self.info.rate)
        short = declared - self.length > max(2, DAMAGE_SLACK * declared)
        if not (self._broken or short):
            return None
        of = f" of the {declared / rate:.2f} s its header declares" if short else ""
        return (
            f"video: its data ends at {self.length / rate:.2f} s{of} (a cut-off upload or "
            "corrupt data): the clip is made from the pictures up to there; send the whole file"
        )

    def _remember(self, slot: int, picture: Picture) -> Picture:
        """Caches a decoded picture; returns it, at the current size (``decode_at``: the
        decoding pass looks one picture ahead, which it made before the size changed)."""
        assert self._shape is not None
        if self._shape.scaling and picture.size != (self._shape.width, self._shape.height):
            picture = self._shape.scaled(picture)
        self._cache[slot] = picture
        self._cache.move_to_end(slot)
        self._cache_bytes += picture.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return picture

    def _seeking(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        if self._seeker is None:
            self._spool.wait_complete()  # seeking needs the whole file
            self._seeker = self._open(self._spool.seekable())
        return self._seeker

    def _seek_to(self, slot: int) -> Picture | None:
        assert self.info is not None
        current = self._seek_pass
        if current is None or not current.next_slot <= slot <= current.next_slot + SEEK_AHEAD:
            container, stream = self._seeking()
            current = self._restart(container, stream, slot)
        for attempt in range(2):
            while (item := current.next()) is not None:
                picture = self._remember(*item)
                if item[0] == slot:
                    return picture
                if item[0] > slot:
                    break  # the seek landed after the slot (odd timestamps)
            if attempt == 0:
                container, stream = self._seeking()
                current = self._restart(container, stream, 0)  # from the start: always right
        return None

    def _restart(self, container, stream, slot: int) -> _Pass:
        assert self.info is not None and stream.time_base is not None
        target = self._t0 + slot / self.info.rate
        container.seek(
            max(0, int(target / stream.time_base)), stream=stream, backward=True, any_frame=False
        )
        self.seeks += 1
        if self._seek_pass is not None:
            self._seek_pass.close()
        self._seek_pass = _Pass(self, container, stream, self.info.rate, start=self._t0)
        return self._seek_pass

    def _picture(self, frame: av.VideoFrame) -> Picture:
        if frame.width * frame.height > self._max_pixels:
            raise ResourceExhausted(
                f"the video has a {frame.width}x{frame.height} frame; the limit is "
                f"{self._max_pixels} pixels per frame: scale it down",
                field="video",
            )
        if self._shape is None:
            self._shape = _Shape.of(frame, self._sample_aspect(), self._to_sdr)
        return self._shape.picture(frame)

    def _sample_aspect(self) -> Fraction:
        """The video's sample aspect ratio (a pixel's width over its height), as FFmpeg's
        players take it: the container's (MP4's pasp, Matroska's display size), else the
        bitstream's (read once a picture is decoded); 1 where neither says, or where it is
        beyond MAX_SAMPLE_ASPECT either way (a broken header)."""
        for source in (self._stream, self._stream.codec_context) if self._stream else ():
            sar = source.sample_aspect_ratio
            if sar:
                sar = Fraction(sar)
                if 1 / MAX_SAMPLE_ASPECT <= sar <= MAX_SAMPLE_ASPECT:
                    return sar
                log.info("video sample aspect ratio %s ignored (out of range)", sar)
        return Fraction(1)


class _Shape:
    """The first frame's orientation, size and colour, which every picture takes."""

    def __init__(
        self,
        orientation: int,
        width: int,
        height: int,
        colour: Colour | None,
        hdr: str | None = None,
        stored: tuple[int, int] | None = None,
        to_sdr: ToSdr | None = None,
    ):
        self.orientation = orientation
        #: the pictures' size (upright): the source's as shown (square pixels), or what
        #: ``scale_to`` set
        self.width, self.height = width, height
        #: upright, as decoded (differs from the size shown where pixels are not square)
        self._source_wh = stored or (width, height)
        #: VideoInfo.non_square
        self.non_square: tuple[Fraction, tuple[int, int]] | None = None
        self.colour = colour
        #: what makes the first frame need colour management (``hdr_of``), None for SDR BT.709/601
        self.hdr = hdr
        #: the first frame's sampling where it is converted to 8-bit 4:2:0 limited range
        #: (``yuv.converted_colour``: "10-bit 4:2:2"), None where its samples are kept
        self.converted: str | None = None
        self._to_rgb = VideoReformatter()
        self._scaler = VideoReformatter()
        self._to_sdr = to_sdr or ToSdr()

    def scale_to(self, width: int, height: int) -> None:
        """Pictures at ``width`` x ``height`` (upright) from now on (SourceVideo.decode_at)."""
        self.width, self.height = width, height

    @property
    def scaling(self) -> bool:
        """Whether pictures are scaled from the source's size (``scale_to``)."""
        return (self.width, self.height) != self._source_wh

    def _scaled_size(self) -> tuple[int, int] | None:
        """The stored (not yet upright) size pictures are scaled to, or None: the source's."""
        if not self.scaling:
            return None
        if swaps_sides(self.orientation):
            return self.height, self.width
        return self.width, self.height

    def scaled(self, picture: Picture) -> Picture:
        """A picture made before ``scale_to``, at the new size: the same scaler as a frame's
        (area, on I420's own planes), or an area resize of its RGB."""
        if picture.i420 is not None:
            frame = av.VideoFrame.from_ndarray(picture.i420, format="yuv420p")
            small = self._scale(frame, (self.width, self.height))
            return Picture(i420=self._i420(small, oriented=False))
        assert picture.rgb is not None
        size = (self.width, self.height)
        return Picture(rgb=cv2.resize(picture.rgb, size, interpolation=cv2.INTER_AREA))

    def _scale(self, frame: av.VideoFrame, size: tuple[int, int]) -> av.VideoFrame:
        # area: each output sample averages the source samples it covers (a 4K -> 1080p
        # picture without aliasing), on the frame's own format, range and tags
        return self._scaler.reformat(
            frame, width=size[0], height=size[1], interpolation="AREA", threads=1
        )

    @classmethod
    def of(
        cls,
        frame: av.VideoFrame,
        sample_aspect: Fraction = Fraction(1),
        to_sdr: ToSdr | None = None,
    ) -> _Shape:
        orientation = _orientation(frame)
        if orientation != UPRIGHT:
            log.info("video display orientation %d applied", orientation)
        w, h = frame.width, frame.height
        stored = (h, w) if swaps_sides(orientation) else (w, h)
        if sample_aspect != 1:
            # Non-square pixels: shown at the displayed shape in square ones, widened (or, for
            # tall pixels, heightened): no sample is dropped, and the tracker sees the face in
            # its true proportions. Even sides, as every picture has.
            if sample_aspect > 1:
                w = max(2, round(w * sample_aspect / 2) * 2)
            else:
                h = max(2, round(h / sample_aspect / 2) * 2)
            log.info("video pixels %s:1 wide: shown at %dx%d", sample_aspect, w, h)
        if swaps_sides(orientation):
            w, h = h, w
        whole = min(frame.width, frame.height) >= 2  # a chroma sample at least
        colour = colour_of(frame) if whole else None
        hdr = hdr_of(frame) if whole else None
        converted = None
        if hdr is not None:
            log.info("video is %s: converted to SDR BT.709", hdr)
            colour = BT709  # ToSdr's pictures
        elif colour is None and whole and (colour := converted_colour(frame)) is not None:
            converted = sampling_of(frame)
            log.info("video is %s: converted to 8-bit 4:2:0 limited range", converted)
        shape = cls(orientation, w, h, colour, hdr, stored if stored != (w, h) else None, to_sdr)
        shape.converted = converted
        if stored != (w, h):
            shape.non_square = (sample_aspect, stored)
        return shape

    def picture(self, frame: av.VideoFrame) -> Picture:
        stored = (frame.height, frame.width)
        if swaps_sides(self.orientation):
            stored = stored[::-1]
        same = stored == self._source_wh[::-1]
        size = self._scaled_size()
        if self.hdr is not None and same and hdr_of(frame) is not None:
            return Picture(i420=self._packed(self._to_sdr.planes(frame, size)))
        if self.colour is not None and same and colour_of(frame) == self.colour:
            return Picture(i420=self._i420(frame if size is None else self._scale(frame, size)))
        if (
            self.colour is not None
            and same
            and hdr_of(frame) is None
            and converted_colour(frame) == self.colour
        ):
            return Picture(i420=self._i420(to_kept(self._scaler, frame, self.colour, size)))
        rgb = self._rgb(frame)
        if rgb.shape[:2] != (self.height, self.width):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        # (with a colour: a frame unlike the first, a new size or format midway; made I420
        # downstream under the first frame's colour)
        return Picture(rgb=rgb)

    def _i420(self, frame: av.VideoFrame, *, oriented: bool = True) -> np.ndarray:
        """A yuv420p frame's samples, packed (even sides), turned upright unless it is
        already (``oriented=False``)."""
        w, h = frame.width & ~1, frame.height & ~1
        cut = []
        for index, (pw, ph) in enumerate(((w, h), (w // 2, h // 2), (w // 2, h // 2))):
            plane = frame.planes[index]
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
            cut.append(rows[:ph, :pw])
        return self._packed(cut, oriented=oriented)

    def _packed(self, planes: Iterable[np.ndarray], *, oriented: bool = True) -> np.ndarray:
        """Y, U, V planes as stored, packed, turned upright unless they are already."""
        orientation = self.orientation if oriented else UPRIGHT
        return pack(*(apply_orientation(plane, orientation) for plane in planes))

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if hdr_of(frame) is not None:
            return apply_orientation(self._to_sdr.rgb(frame), self.orientation)
        matrix = self.colour.matrix if self.colour is not None else None
        if matrix is None and int(frame.colorspace) == 2:  # untagged: as players guess
            matrix = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
        rgb = self._to_rgb.reformat(
            frame, format="rgb24", src_colorspace=matrix, dst_colorspace=matrix, threads=1
        ).to_ndarray()
        return apply_orientation(rgb, self.orientation)


class Deinterlacer:
    """Decoded frames in order, those flagged interlaced made progressive.

    Broadcast and camcorder video (1080i, HDV, DV, PAL/NTSC SD) stores two fields, half a frame
    period apart, woven into each frame: kept as they are, a moving face shows combs on every
    edge, and the output (progressive H.264, as browsers play it) would show them too, where a
    player deinterlaces the source. The tracker and the renderer also need one instant per
    picture. FFmpeg's bwdif ("Bob Weaver": yadif's motion-adaptive scheme with w3fdif's and cubic
    interpolation) makes one frame of each frame (frame rate and timing kept, as the
    clip keeps the source's), and only of frames flagged interlaced: a progressive video never
    reaches it. It looks at the next frame too, so the pictures come one frame later (flushed
    at the end). It cost 0.3 ms of CPU a 720x576 frame and 2.4 ms a 1920x1080 one here (2-core
    AMD EPYC; decoding them: 1.4 and 6.4 ms); a pass after a seek starts it afresh."""

    #: mode=send_frame: a frame per frame; deint=interlaced: flagged frames only
    FILTER = ("bwdif", "mode=send_frame:parity=auto:deint=interlaced")

    def __init__(self) -> None:
        self._graph: av.filter.Graph | None = None
        self._key: tuple | None = None
        self._times: deque[tuple[int | None, Fraction | None]] = deque()
        #: whether a frame went through the filter
        self.used = False

    def frames(self, decoded: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in decoded:
            if self._graph is None and not frame.interlaced_frame:
                yield frame
                continue
            key = (frame.width, frame.height, frame.format.name)
            if self._graph is not None and key != self._key:  # a new size midway
                yield from self._drain(flush=True)
            if self._graph is None:
                try:
                    self._graph, self._key = filter_chain(frame, self.FILTER), key
                except (av.error.FFmpegError, ValueError) as exc:  # a format bwdif lacks
                    log.warning("video: %s frames cannot be deinterlaced: %s", key[2], exc)
                    yield frame
                    continue
                self.used = True
            self._graph.push(frame)
            self._times.append((frame.pts, frame.time_base))
            yield from self._drain()
        if self._graph is not None:
            yield from self._drain(flush=True)

    def _drain(self, *, flush: bool = False) -> Iterator[av.VideoFrame]:
        assert self._graph is not None
        if flush:
            self._graph.push(None)
        while self._times:
            try:
                out = cast(av.VideoFrame, self._graph.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            # the frame's own timing (the filter's buffer counts in its own time base)
            out.pts, out.time_base = self._times.popleft()
            yield out
        if flush:
            self._graph = self._key = None
            self._times.clear()


class _Pass:
    """One decoding run from where its container stands, as (slot, picture) in order."""

    def __init__(self, video: SourceVideo, container, stream, rate: Fraction, start: float | None):
        self.container = container
        self.next_slot = 0
        self.done = False
        self._items = self._run(video, container, stream, rate, start)

    def close(self) -> None:
        """End the decoding generator now: it and this pass refer to each other (and to the
        video), a cycle that would keep the decoder's frame buffers (tens of MB at 1080p)
        until a full garbage collection (measured: +48 MB of RSS per 1080p lipsync run)."""
        self._items.close()
        self.done = True

    def next(self) -> tuple[int, Picture] | None:
        if self.done:
            return None
        item = next(self._items, None)
        if item is None:
            self.done = True
            return None
        self.next_slot = item[0] + 1
        return item

    def _run(self, video: SourceVideo, container, stream, rate, start) -> Generator:
        yield from _slots(self._timed(video, container, stream, start), rate, video._max_frames)

    @staticmethod
    def _timed(video: SourceVideo, container, stream, start: float | None) -> Iterator:
        decoded = 0
        produced = False
        first_pass = start is None
        fields = Deinterlacer()
        try:
            for frame in fields.frames(container.decode(stream)):
                video.interlaced |= fields.used
                decoded += 1
                if decoded > 2 * video._max_frames * video._step:  # timestamps stuck
                    log.warning("video: %d frames decoded; stopping", decoded)
                    return
                if frame.pts is None or frame.time_base is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if start is None:
                    start = video._t0 = t
                video.decoded += 1
                produced = True
                yield t - start, video._picture(frame)
        except av.error.FFmpegError as exc:
            log.warning("video decoding stopped (%s): %s", stream.codec_context.name, exc)
            if produced and first_pass:
                video._broken = True
            if not produced and video.info is None:
                raise InvalidInput(
                    "could not read the video: its pictures could not be decoded (corrupt "
                    f"data or an unsupported codec); send a complete {ACCEPTED_VIDEO_FORMATS} "
                    "file (H.264 plays everywhere)",
                    field="video",
                ) from None


def _slots(timed: Iterable[tuple[float, object]], rate: Fraction, max_slots: int) -> Iterator:
    """(slot, item) at a constant ``rate`` from (time, item) in presentation order: slot k
    shows the last item whose time is before (k + 1/2) / rate; the last item gets one slot."""
    previous: object = None
    have = False
    first_of_previous = 0
    for t, item in timed:
        first = math.floor(t * rate - 0.5 + 1e-9) + 1  # the first slot this item shows in
        if have:
            for k in range(first_of_previous, min(first, max_slots)):
                yield k, previous
            if first >= max_slots:
                return
        previous, have = item, True
        first_of_previous = max(first, first_of_previous)
    if have and first_of_previous < max_slots:
        yield first_of_previous, previous


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
