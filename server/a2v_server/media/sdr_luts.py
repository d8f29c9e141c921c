"""The 3D LUTs that make HDR and wide-gamut video SDR BT.709 (media/video.ToSdr), and where
they are kept.

FFmpeg's colour-managed swscale makes each one: it takes ~2.5 s of CPU to set up for a
transfer and primaries pair (this 2-core EPYC), which the first HDR upload of a process would
wait for before its first chunk. So they are made ahead of time, where the server's Python is
installed (``make venv``, the server image: ``python -m a2v_server.media.sdr_luts``), for the
pairs that phones and HDR masters carry, and read from there; a pair not made ahead (or a
read-only install without them) is made on first use, kept for the process in a temporary
file, and added to that folder when it can be written.

Each file is named for what makes it: the pair, the lattice and the FFmpeg (libswscale) that
converted it, so an upgraded FFmpeg makes its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import cast

import av
import numpy as np

from a2v_server.media.filters import filter_chain

log = logging.getLogger(__name__)

#: the SDR LUTs' points per axis (33: what colour tools ship as .cube files)
LUT_POINTS = 33
#: made ahead of time, AVCOL_TRC / AVCOL_PRI numbers: HLG (phones' default HDR) and PQ (HDR10,
#: Dolby Vision's base layer) in BT.2020, and BT.2020 primaries with an SDR transfer
COMMON = ((18, 9), (16, 9), (1, 9))
#: where LUTs made ahead of time are kept: beside the server's Python (the venv, the image)
LUT_DIR = Path(sys.prefix) / "share" / "a2v" / "luts"

_luts: dict[tuple[int, int], str] = {}
_luts_lock = threading.Lock()
_temporary: list[str] = []


def sdr_lut(transfer: int, primaries: int) -> str:
    """The path of a .cube 3D LUT from RGB under ``transfer`` and ``primaries`` (AVCOL_TRC_*,
    AVCOL_PRI_* numbers) to SDR BT.709 RGB, as FFmpeg's colour-managed swscale converts: the
    one made ahead of time in LUT_DIR, else made now (~2.5 s) and kept for the process."""
    with _luts_lock:
        path = _luts.get((transfer, primaries))
        if path is not None:
            return path
        kept = LUT_DIR / _name(transfer, primaries)
        if kept.is_file():
            path = str(kept)
        else:
            if not _temporary:
                _temporary.append(tempfile.mkdtemp(prefix="a2v-luts-"))
                atexit.register(shutil.rmtree, _temporary[0], True)
            path = os.path.join(_temporary[0], kept.name)
            _write(transfer, primaries, Path(path))
            log.info("SDR LUT for transfer %d, primaries %d made", transfer, primaries)
            _keep(Path(path), kept)
        _luts[(transfer, primaries)] = path
        return path


def prepare(folder: Path | None = None) -> list[Path]:
    """Makes the COMMON LUTs in ``folder`` (LUT_DIR) that are not there yet; their paths."""
    folder = folder or LUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for transfer, primaries in COMMON:
        path = folder / _name(transfer, primaries)
        if not path.is_file():
            part = path.with_suffix(f".{os.getpid()}.part")
            _write(transfer, primaries, part)
            os.replace(part, path)
        paths.append(path)
    return paths


def _name(transfer: int, primaries: int) -> str:
    swscale = ".".join(map(str, av.library_versions["libswscale"]))
    return f"sdr-{transfer}-{primaries}-{LUT_POINTS}-swscale{swscale}.cube"


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
    sdr = cast(av.VideoFrame, graph.pull()).to_ndarray().reshape(-1, 3) / 65535.0
    with open(path, "w") as cube:
        cube.write(f"LUT_3D_SIZE {n}\n")
        cube.writelines(f"{r:.6f} {g:.6f} {b:.6f}\n" for r, g, b in sdr)


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
