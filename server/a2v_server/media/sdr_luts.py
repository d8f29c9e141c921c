"""The 3D LUTs that make HDR and wide-gamut video SDR BT.709 (media/hdr.ToSdr), and where
they are kept.

Two kinds. ``sdr_lut``: RGB under an HDR transfer and primaries to SDR BT.709 RGB, as FFmpeg's
colour-managed swscale converts (the whole-frame conversion's). ``grid_lut``: the chroma grid's
(hdr._ChromaGrid), from the source's 10-bit YUV straight to SDR BT.709 limited-range YUV: the
whole chain (the source's matrix to RGB, ``sdr_lut``, BT.709's matrix) sampled on a lattice of
YUV colours, so that a frame goes through one lut3d and no swscale conversion.

FFmpeg's colour management takes ~2.5 s of CPU to set up for a transfer and primaries pair
(this 2-core EPYC), which the first HDR upload of a process would wait for before its first
chunk. So the LUTs are made ahead of time, where the server's Python is installed (``make
venv``, the server image: ``python -m a2v_server.media.sdr_luts``), for the tags that phones
and HDR masters carry, and read from there; a LUT not made ahead (or a read-only install
without them) is made on first use, kept for the process in a temporary file, and added to
that folder when it can be written.

Each file is named for what makes it: the tags, the lattice and the FFmpeg (libswscale) that
converted it, so an upgraded FFmpeg makes its own.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from a2v_server.media.filters import filter_chain

log = logging.getLogger(__name__)

#: AVCOL_TRC_BT709 and AVCOL_PRI_BT2020 numbers, and the reserved / unspecified numbers of both
#: tags (lut_of)
_BT709_TRANSFER, _BT2020_PRIMARIES, _UNTAGGED = 1, 9, (0, 2, 3)
#: the SDR LUTs' points per axis (33: what colour tools ship as .cube files)
LUT_POINTS = 33
#: the chroma grid's YUV LUTs' points per axis. On a phone's 1080p HLG clip, the grid's luma
#: against the whole-frame conversion: 53.0 dB through the chain, 47.5 / 50.7 / 51.9 dB through
#: a grid LUT of 33 / 49 / 65 points; FFmpeg's lut3d parses a 65-point .cube in ~110 ms, a
#: 49-point one in ~45 ms (once per process and size: hdr._GridPool)
GRID_POINTS = 49
#: the transfers whose chroma grid converts through a grid LUT (AVCOL_TRC numbers): HLG. PQ's
#: steeper curve bends more within a lattice cell: saturated colours came out up to 17 levels
#: off (11 through the chain); its grid, and BT.2020's without HDR, go through the chain
GRID_TRANSFERS = (18,)
#: made ahead of time, AVCOL_TRC / AVCOL_PRI numbers: HLG (phones' default HDR) and PQ (HDR10,
#: Dolby Vision's base layer) in BT.2020, and BT.2020 primaries with an SDR transfer
COMMON = ((18, 9), (16, 9), (1, 9))
#: the matrix and range (AVCOL_SPC, AVCOL_RANGE numbers) of the grid LUTs made ahead: BT.2020
#: non-constant luminance, limited range (what phones' HLG and HDR10 masters carry)
COMMON_YUV = (9, 1)
#: where LUTs made ahead of time are kept: beside the server's Python (the venv, the image)
LUT_DIR = Path(sys.prefix) / "share" / "a2v" / "luts"

_luts: dict[str, str] = {}
#: re-entrant: a grid LUT made on first use reads (or makes) its RGB LUT while it is held
_luts_lock = threading.RLock()
_temporary: list[str] = []


def sdr_lut(transfer: int, primaries: int) -> str:
    """The path of a .cube 3D LUT from RGB under ``transfer`` and ``primaries`` (AVCOL_TRC_*,
    AVCOL_PRI_* numbers) to SDR BT.709 RGB, as FFmpeg's colour-managed swscale converts: the
    one made ahead of time in LUT_DIR, else made now (~2.5 s) and kept for the process."""
    return _kept(_name(transfer, primaries), lambda path: _write(transfer, primaries, path))


def grid_lut(matrix: int, level_range: int, transfer: int, primaries: int) -> str:
    """The path of a .cube 3D LUT from 10-bit YUV under ``matrix``, ``level_range``,
    ``transfer`` and ``primaries`` (AVCOL_* numbers) to SDR BT.709 limited-range YUV: the
    source's Y, U, V in its red, green, blue, each a 10-bit code times 64 in 16 bits (FFmpeg's
    16-bit scale for 10-bit samples); the output's Y, U, V (16 bits) in them likewise. What
    ``through_lut`` makes of the same colours, on a lattice of GRID_POINTS per axis."""
    tags = (matrix, level_range, transfer, primaries)
    return _kept(_grid_name(*tags), lambda path: _write_grid(tags, path))


def through_lut(frame: av.VideoFrame, out_format: str) -> tuple[tuple[str, str], ...]:
    """The filters that take ``frame``'s kind of picture through its SDR LUT (``sdr_lut``) to
    BT.709 limited-range YUV in ``out_format``."""
    transfer, primaries = lut_of(frame)
    return (
        # the frame's own matrix and range to RGB, no colour management (the LUT's)
        ("format", "gbrp16le"),
        ("lut3d", f"file={sdr_lut(transfer, primaries)}:interp=tetrahedral"),
        # the LUT's SDR RGB (it leaves the frame's HDR tags) as BT.709 limited-range YUV
        ("scale", "out_color_matrix=bt709:out_range=tv"),
        ("format", out_format),
    )


def lut_of(frame: av.VideoFrame | VideoCodecContext) -> tuple[int, int]:
    """The (transfer, primaries) a frame's LUT converts from: untagged halves of a tagged pair
    read as HDR's BT.2020 and as BT.2020-without-a-transfer's SDR transfer."""
    transfer, primaries = int(frame.color_trc), int(frame.color_primaries)
    transfer = _BT709_TRANSFER if transfer in _UNTAGGED else transfer
    primaries = _BT2020_PRIMARIES if primaries in _UNTAGGED else primaries
    return transfer, primaries


def _kept(name: str, write: Callable[[Path], None]) -> str:
    """The LUT file ``name``: LUT_DIR's, else made by ``write`` into a temporary file (kept
    for the process, and copied into LUT_DIR when it can be written)."""
    with _luts_lock:
        path = _luts.get(name)
        if path is not None:
            return path
        kept = LUT_DIR / name
        if kept.is_file():
            path = str(kept)
        else:
            if not _temporary:
                _temporary.append(tempfile.mkdtemp(prefix="a2v-luts-"))
                atexit.register(shutil.rmtree, _temporary[0], True)
            path = os.path.join(_temporary[0], name)
            write(Path(path))
            log.info("SDR LUT %s made", name)
            _keep(Path(path), kept)
        _luts[name] = path
        return path


def prepare(folder: Path | None = None) -> list[Path]:
    """Makes the COMMON LUTs in ``folder`` (LUT_DIR) that are not there yet, each pair's
    ``sdr_lut`` and, for GRID_TRANSFERS, its ``grid_lut`` under COMMON_YUV; their paths."""
    folder = folder or LUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for transfer, primaries in COMMON:
        tags = (*COMMON_YUV, transfer, primaries)
        makers: list[tuple[str, Callable[[Path], None]]] = [
            (_name(transfer, primaries), functools.partial(_write, transfer, primaries))
        ]
        if transfer in GRID_TRANSFERS:
            makers.append((_grid_name(*tags), functools.partial(_write_grid, tags)))
        for name, write in makers:
            path = folder / name
            if not path.is_file():
                _luts.pop(name, None)  # (a grid LUT reads its pair's from here)
                part = path.with_suffix(f".{os.getpid()}.part")
                write(part)
                os.replace(part, path)
            paths.append(path)
    return paths


def _swscale() -> str:
    return ".".join(map(str, av.library_versions["libswscale"]))


def _name(transfer: int, primaries: int) -> str:
    return f"sdr-{transfer}-{primaries}-{LUT_POINTS}-swscale{_swscale()}.cube"


def _grid_name(matrix: int, level_range: int, transfer: int, primaries: int) -> str:
    tags = f"{matrix}-{level_range}-{transfer}-{primaries}"
    return f"grid-{tags}-{GRID_POINTS}-{LUT_POINTS}-swscale{_swscale()}.cube"


def _write(transfer: int, primaries: int, path: Path) -> None:
    n = LUT_POINTS
    levels = np.linspace(0, 65535, n).round().astype(np.uint16)
    blue, green, red = np.meshgrid(levels, levels, levels, indexing="ij")  # red fastest
    lattice = np.stack([red.ravel(), green.ravel(), blue.ravel()], 1).reshape(n * n, n, 3)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(lattice), format="rgb48le")
    frame.color_trc, frame.color_primaries = transfer, primaries
    frame.colorspace, frame.color_range = 0, 2  # RGB, full range
    graph = filter_chain(
        frame, ("scale", "out_primaries=bt709:out_transfer=bt709"), ("format", "rgb48le")
    )
    graph.push(frame)
    sdr = cast(av.VideoFrame, graph.pull()).to_ndarray().reshape(-1, 3)
    _write_cube(path, n, sdr)


def _write_grid(tags: tuple[int, int, int, int], path: Path) -> None:
    """The grid LUT of ``tags`` (matrix, range, transfer, primaries): a lattice of 16-bit YUV
    colours (Y fastest: the cube's red) through ``through_lut``."""
    n = GRID_POINTS
    levels = np.linspace(0, 65535, n).round().astype(np.uint16)
    v, u, y = np.meshgrid(levels, levels, levels, indexing="ij")
    frame = av.VideoFrame(n, n * n, "yuv444p16le")
    for plane, values in zip(frame.planes, (y, u, v), strict=True):
        rows = np.frombuffer(memoryview(plane), np.uint16).reshape(plane.height, -1)
        rows[:, :n] = values.reshape(n * n, n)
    frame.colorspace, frame.color_range, frame.color_trc, frame.color_primaries = tags
    graph = filter_chain(frame, *through_lut(frame, "yuv444p16le"))
    graph.push(frame)
    out = cast(av.VideoFrame, graph.pull())
    planes = [
        np.frombuffer(memoryview(p), np.uint16).reshape(p.height, -1)[:, :n].ravel()
        for p in out.planes
    ]
    _write_cube(path, n, np.stack(planes, 1))


def _write_cube(path: Path, n: int, table: np.ndarray) -> None:
    """A .cube file of ``table`` ((n^3, 3) 16-bit values, the first axis fastest)."""
    with open(path, "w") as cube:
        cube.write(f"LUT_3D_SIZE {n}\n")
        cube.writelines(f"{r:.6f} {g:.6f} {b:.6f}\n" for r, g, b in (table / 65535.0).tolist())


def _keep(made: Path, kept: Path) -> None:
    """Copies a LUT made on first use into LUT_DIR for the processes after this one, when the
    folder can be written (atomically: another process may read it meanwhile)."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        part = kept.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(made, part)
        os.replace(part, kept)
    except OSError as exc:  # a read-only install: every process makes its own
        log.debug("SDR LUT not kept in %s: %s", kept.parent, exc)


def main() -> None:
    for path in prepare():
        print(path)


if __name__ == "__main__":
    main()
