"""HDR and wide-gamut video made SDR BT.709, as an SDR screen shows it.

The output is 8-bit SDR H.264 (what browsers' Media Source Extensions and every player take),
so an HDR upload (a phone's HLG video, an HDR10 master) must be converted, and converted as an
SDR screen would show it: read as plain SDR (swscale's BT.2020 matrix alone), an HLG phone video
came out dark and dull (the test clip's mean RGB 114 / 95 / 83 where its SDR original has
140 / 105 / 96). FFmpeg 8's swscale does the colour management: linearise by the frame's own
transfer (PQ, HLG), map BT.2020 into BT.709's gamut, tone-map to SDR (relative colorimetric;
the same clip: 146 / 109 / 96). Run per frame it cost ~34 ms a 720p frame; so it runs once per
transfer and install instead (media/sdr_luts.py), on a lattice of 33^3 colours, and frames go
through that 3D LUT (FFmpeg's lut3d, tetrahedral, in 16 bits): within 1.5 levels of the
per-frame conversion on average (p99 8, on the test clip). ``ToSdr.i420`` is that conversion.

Through the LUT a whole 1080p frame still cost ~19 ms (to RGB 4.6, lut3d 11.5, back 3.6, on a
2-core EPYC): more than decoding it, and a phone's 1080p HLG clip ran at 0.76x real time. So
``ToSdr.planes`` converts 10-bit 4:2:0 frames (what phones, HEVC, VP9 and AV1 HDR carry) on
the chroma grid instead (``_ChromaGrid``): the LUT runs on a quarter of the samples and each
luma sample keeps its own detail through the transfer's grey curve; 12-16 ms a 1080p frame,
~9 ms for HLG since its grid's colours go through one YUV-to-YUV LUT (sdr_luts.grid_lut).
"""

from __future__ import annotations

import threading
from typing import cast

import av
import cv2
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import VideoReformatter

from a2v_server.media.filters import filter_chain
from a2v_server.media.sdr_luts import GRID_TRANSFERS, grid_lut, lut_of, through_lut

#: AVColorTransferCharacteristic numbers of HDR video (libavutil/pixfmt.h): SMPTE ST 2084 (PQ:
#: HDR10, Dolby Vision's base layer) and ARIB STD-B67 (HLG: phones' default HDR); and the
#: AVColorPrimaries number of BT.2020 (wide gamut, HDR or not)
_PQ, _HLG, _BT2020_PRIMARIES = 16, 18, 9
#: AVCOL_TRC_BT709
_BT709_TRANSFER = 1
#: AVCOL_SPC_BT709, AVCOL_RANGE_MPEG
_BT709_MATRIX, _LIMITED = 1, 1


#: what carries a picture's colour tags: a frame, or a stream's codec context (ToSdr.prepare)
Tagged = av.VideoFrame | VideoCodecContext


def hdr_of(frame: Tagged) -> str | None:
    """What makes a frame's colours need managing before they are SDR BT.709 RGB: "PQ" or
    "HLG" (an HDR transfer; BT.2020 primaries with it), "BT.2020" (wide-gamut primaries with
    an SDR transfer); None for the SDR BT.709 / BT.601 video that nearly every camera and
    encoder writes, and for untagged video."""
    transfer = int(frame.color_trc)
    if transfer == _PQ:
        return "PQ"
    if transfer == _HLG:
        return "HLG"
    if int(frame.color_primaries) == _BT2020_PRIMARIES:
        return "BT.2020"
    return None


def _planes(frame: av.VideoFrame, dtype: type) -> list[np.ndarray]:
    """Views of a planar frame's samples (rows cut to the plane's width)."""
    out = []
    for plane in frame.planes:
        rows: np.ndarray = np.frombuffer(memoryview(plane), dtype).reshape(plane.height, -1)
        out.append(rows[:, : plane.width])
    return out


def _tagged(frame: av.VideoFrame) -> av.VideoFrame:
    frame.colorspace, frame.color_range = _BT709_MATRIX, _LIMITED
    frame.color_trc = frame.color_primaries = _BT709_TRANSFER
    return frame


class ToSdr:
    """Frames of HDR or wide-gamut video (``hdr_of``) as SDR BT.709, limited range."""

    def __init__(self) -> None:
        self._graph: av.filter.Graph | None = None
        self._key: tuple | None = None
        self._grid: _ChromaGrid | None = None
        self._scaler = VideoReformatter()
        self._ahead: _GridAhead | None = None

    def prepare(self, stream: VideoCodecContext) -> None:
        """Start setting up the chroma grid for the frames of ``stream`` (its codec context,
        open, before any picture is decoded: the container's and the bitstream's headers
        name the sampling and the colour tags) on a thread of its own, when they are 10-bit
        4:2:0 HDR. Its filter graphs took ~75-85 ms, after the first picture was decoded and
        before it could be converted; now they are set up while it decodes. Frames of
        another size or tags (the first picture says otherwise) set up their own."""
        width, height = stream.width, stream.height
        # (H.264's headers leave the sampling unread until a picture is decoded; its profile
        # names it)
        sampling = stream.format.name if stream.format else _SAMPLING.get(stream.profile or "")
        if sampling != _ChromaGrid.FORMAT or min(width, height) < 2 or hdr_of(stream) is None:
            return
        tags = (int(stream.colorspace), int(stream.color_range), *lut_of(stream))
        key = (width, height, tags)
        self._grid = _POOL.take(key) or self._grid
        if self._grid is None or self._grid.key != key:
            self._ahead = _GridAhead(key)

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame``'s RGB (height, width, 3 uint8), SDR BT.709."""
        return self.i420(frame).to_ndarray(format="rgb24")

    def i420(self, frame: av.VideoFrame, size: tuple[int, int] | None = None) -> av.VideoFrame:
        """``frame`` as SDR BT.709 yuv420p through the LUT, whole; scaled to ``size`` (width,
        height) first when given, in the same swscale pass as its conversion to RGB (the LUT
        then runs on the smaller picture)."""
        key = (frame.width, frame.height, frame.format.name, lut_of(frame), size)
        if self._graph is None or key != self._key:
            scale = () if size is None else (("scale", f"w={size[0]}:h={size[1]}:flags=area"),)
            self._graph = filter_chain(frame, *scale, *through_lut(frame, "yuv420p"))
            self._key = key
        self._graph.push(frame)
        return _tagged(cast(av.VideoFrame, self._graph.pull()))

    def planes(
        self, frame: av.VideoFrame, size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``frame`` as SDR BT.709 limited-range I420 planes (Y, U, V uint8, even sides; as
        stored, not turned upright), scaled to ``size`` first when given: on the chroma grid
        for 10-bit 4:2:0 frames, else through ``i420``."""
        if frame.format.name != _ChromaGrid.FORMAT or min(frame.width, frame.height) < 2:
            y, u, v = _planes(self.i420(frame, size), np.uint8)
            h, w = y.shape[0] & ~1, y.shape[1] & ~1
            return y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2]
        lut = lut_of(frame)
        tags = (int(frame.colorspace), int(frame.color_range), *lut)
        if size is not None and size != (frame.width, frame.height):
            frame = self._scaler.reformat(
                frame, width=size[0], height=size[1], interpolation="AREA", threads=1
            )
        key = (frame.width, frame.height, tags)
        if self._grid is None or self._grid.key != key:
            ahead, self._ahead = self._ahead, None
            if self._grid is not None:
                _POOL.give(self._grid)
            made = ahead.grid(key) if ahead else None
            self._grid = made or _POOL.take(key) or _ChromaGrid(*key)
        return self._grid.planes(frame)

    def close(self) -> None:
        """Done with this video: its chroma grid goes back to the pool for the next one of
        the same size and tags (one still being set up, once it is)."""
        grid, self._grid = self._grid, None
        if grid is not None:
            _POOL.give(grid)
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.release()


#: the sampling of the codec profiles that allow only 10-bit 4:2:0 (ToSdr.prepare)
_SAMPLING = {"High 10": "yuv420p10le", "Main 10": "yuv420p10le"}


class _GridAhead:
    """A _ChromaGrid set up on a thread of its own (ToSdr.prepare)."""

    def __init__(self, key: tuple[int, int, tuple[int, int, int, int]]) -> None:
        self.key = key
        self._grid: _ChromaGrid | None = None
        self._lock = threading.Lock()
        self._released = False
        self._thread = threading.Thread(target=self._run, name="hdr-grid", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            grid = _ChromaGrid(*self.key)
        except Exception:  # (the frames' own set-up then reports it)
            return
        with self._lock:
            self._grid = grid
            if self._released:  # nobody will take it: the pool keeps it
                _POOL.give(grid)

    def grid(self, key: tuple) -> _ChromaGrid | None:
        """The grid, once set up, if it is the one for ``key`` (else it goes to the pool)."""
        if key != self.key:
            self.release()
            return None
        self._thread.join()
        return self._grid

    def release(self) -> None:
        """The grid is not wanted here: into the pool, now or once it is set up."""
        with self._lock:
            self._released = True
            grid, self._grid = self._grid, None
        if grid is not None:
            _POOL.give(grid)


class _GridPool:
    """Chroma grids kept for the next video of the same size and tags. Setting one up builds
    four filter graphs, HLG's parsing its grid LUT: ~60 ms of CPU (~105 ms for HLG's), which
    the first picture waits for where it decodes faster (the first chunk of an HDR upload). A
    grid holds no state between frames (each ``planes`` pushes one frame through and pulls it
    out), so one video after another can use it. At most KEEP are kept (each holds its
    graphs' LUTs and frame buffers), the least recently given back dropped first."""

    KEEP = 4

    def __init__(self) -> None:
        self._grids: list[_ChromaGrid] = []
        self._lock = threading.Lock()

    def take(self, key: tuple) -> _ChromaGrid | None:
        with self._lock:
            for k, grid in enumerate(self._grids):
                if grid.key == key:
                    return self._grids.pop(k)
        return None

    def give(self, grid: _ChromaGrid) -> None:
        with self._lock:
            if grid not in self._grids:
                self._grids.append(grid)
                del self._grids[: -self.KEEP]


class _ChromaGrid:
    """HDR-to-SDR conversion of 10-bit 4:2:0 frames on the chroma grid.

    Each 2x2 block of luma samples shares one chroma sample. The block's mean luma and its
    chroma go through the LUT as one colour (a 4:4:4 picture of a quarter of the samples):
    that gives the block's SDR chroma and its SDR luma. Each luma sample then takes the SDR
    level of a grey of its own luma (a 1D table of the LUT's greys), plus its block's colour
    offset: the block's SDR luma less the grey level of its mean, spread bilinearly. Greys
    and flat colours come out as the whole-frame LUT makes them; where a block mixes two
    colours, its chroma is that of the mixture, not the mixture of the two converted.

    Against the whole-frame LUT (``ToSdr.i420``), on the astronaut photo (skin, teeth, a
    flag, a white helmet on black; test_hdr.py): luma 46.4 / 48.9 dB (HLG / PQ), chroma
    46.5-48.4 dB, 99 % of samples within 5 levels; 1-pixel black and white stripes within 1
    level. Between fully saturated primaries (colour bars) chroma is off by up to ~50 levels
    on the edge's own samples. On a 1080p HLG speaker clip: 53 dB in each plane. Spreading
    the block's luma by the curve's slope instead (one table lookup less) left such stripes
    up to 32 (HLG) and 51 (PQ) levels off.
    """

    FORMAT = "yuv420p10le"

    def __init__(self, width: int, height: int, tags: tuple[int, int, int, int]) -> None:
        self.key = (width, height, tags)
        self._tags = tags
        self._grid_size = (width // 2, height // 2)
        # HLG's blocks go through the grid LUT (sdr_luts.grid_lut): YUV to YUV in one lut3d,
        # the source's Y, U, V in a 16-bit RGB picture's red, green, blue. Through the whole
        # chain (swscale to RGB, the RGB LUT, swscale to YUV) they cost 7.2-7.5 ms a 1080p
        # frame, the conversions ~2.5 ms of it; through the grid LUT ~4.9 ms (the whole
        # ``planes`` 11.6 -> 9.2 ms, medians of 5 interleaved rounds of 20 frames), within 6
        # levels of the chain on a phone's HLG clip, its test colours within 3 as before. PQ's
        # steeper curve left saturated green 17 levels off through it (11 through the chain):
        # its blocks, and BT.2020's without HDR, go through the chain (GRID_TRANSFERS).
        self._direct = tags[2] in GRID_TRANSFERS
        if self._direct:
            colours = av.VideoFrame(*self._grid_size, "gbrp16le")
            lut = ("lut3d", f"file={grid_lut(*tags)}:interp=tetrahedral")
            self._graph = filter_chain(colours, lut)
        else:
            grid = self._frame(*self._grid_size)
            self._graph = filter_chain(grid, *through_lut(grid, "yuv444p16le"))
        # the grey curve: every 10-bit luma code with neutral chroma, through the chain
        ramp = self._frame(1024, 2)
        y, u, v = _planes(ramp, np.uint16)
        y[:], u[:], v[:] = np.arange(1024, dtype=np.uint16), 512, 512
        graph = filter_chain(ramp, *through_lut(ramp, "yuv444p16le"))
        graph.push(ramp)
        ramp_out = cast(av.VideoFrame, graph.pull())
        # SDR grey levels in quarter levels (10-bit codes), as FFmpeg's lut filter applies
        # them: a table lookup per sample in C (numpy's take made every index 64 bits first
        # and cost 4-7 ms a 1080p frame, the filter 1.5 ms)
        levels = ((_planes(ramp_out, np.uint16)[0][0].astype(np.int32) + 32) >> 6).tolist()
        greys = ("lutyuv", f"y={_table(levels, 0, 1024)}")
        self._greys = filter_chain(self._frame(width, height, frame_format=self.FORMAT), greys)
        self._grid_greys = filter_chain(self._frame(*self._grid_size), greys)

    def _frame(self, width: int, height: int, frame_format: str = "yuv444p10le") -> av.VideoFrame:
        frame = av.VideoFrame(width, height, frame_format)
        matrix, level_range, transfer, primaries = self._tags
        frame.colorspace, frame.color_range = matrix, level_range
        frame.color_trc, frame.color_primaries = transfer, primaries
        return frame

    def planes(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width, height = self._grid_size
        y, u, v = _planes(frame, np.uint16)
        mean = cv2.resize(
            y[: 2 * height, : 2 * width], self._grid_size, interpolation=cv2.INTER_AREA
        )
        means = self._frame(width, height)
        gy, gu, gv = _planes(means, np.uint16)
        gy[:] = mean
        if self._direct:
            # the blocks' colours, 10-bit codes times 64 (FFmpeg's 16-bit scale), as the grid
            # LUT takes them: Y, U, V in red, green, blue (gbrp's planes: green, blue, red)
            colours = av.VideoFrame(width, height, "gbrp16le")
            green, blue, red = _planes(colours, np.uint16)
            for code, plane in (
                (mean, red),
                (u[:height, :width], green),
                (v[:height, :width], blue),
            ):
                np.left_shift(code, 6, out=plane)
            self._graph.push(colours)
            sdr_u, sdr_v, sdr_y = _planes(cast(av.VideoFrame, self._graph.pull()), np.uint16)
        else:
            gu[:], gv[:] = u[:height, :width], v[:height, :width]
            self._graph.push(means)
            sdr_y, sdr_u, sdr_v = _planes(cast(av.VideoFrame, self._graph.pull()), np.uint16)
        self._grid_greys.push(means)  # (its chroma is not read: lutyuv copies it)
        mean_grey = _planes(cast(av.VideoFrame, self._grid_greys.pull()), np.uint16)[0]
        self._greys.push(frame)
        greys = _planes(cast(av.VideoFrame, self._greys.pull()), np.uint16)[0]
        # luma = the sample's own grey level + its block's colour offset (the block's SDR
        # luma less the grey level of its mean), in quarter levels; the offset is kept
        # 512 up (unsigned: OpenCV's saturating arithmetic) and spread bilinearly
        offset = ((sdr_y.astype(np.int32) + 32) >> 6) - mean_grey + 512
        spread = cv2.resize(
            offset.astype(np.uint16), (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR
        )
        luma = cv2.addWeighted(
            greys[: 2 * height, : 2 * width], 0.25, spread, 0.25, -128, dtype=cv2.CV_8U
        )
        return (
            luma,
            cv2.convertScaleAbs(sdr_u, alpha=1 / 256),
            cv2.convertScaleAbs(sdr_v, alpha=1 / 256),
        )


_POOL = _GridPool()


def _table(levels: list[int], low: int, high: int) -> str:
    """An FFmpeg expression of ``val`` that is ``levels[val]`` for val in [low, high): a
    binary tree of ifs (one long sum of terms exceeds the expression parser's depth)."""
    if high - low == 1:
        return str(levels[low])
    middle = (low + high) // 2
    return f"if(lt(val,{middle}),{_table(levels, low, middle)},{_table(levels, middle, high)})"
