"""media/sdr_luts: the HDR-to-SDR LUTs are made ahead of time where the server is installed and
read from there, so that no upload waits ~2.5 s for FFmpeg's colour management; a LUT not made
ahead is made on first use and kept for the processes after."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from a2v_server.media import sdr_luts
from a2v_server.media.video import ToSdr

HLG, BT2020 = 18, 9


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process that has made no LUT yet, installed at ``tmp_path/luts``; HLG's LUT the only
    one made ahead (each takes ~2.5 s)."""
    monkeypatch.setattr(sdr_luts, "COMMON", ((HLG, BT2020),))
    monkeypatch.setattr(sdr_luts, "_luts", {})
    monkeypatch.setattr(sdr_luts, "_temporary", [])
    monkeypatch.setattr(sdr_luts, "LUT_DIR", tmp_path / "luts")
    return tmp_path / "luts"


def _hlg_frame() -> av.VideoFrame:
    """A 10-bit HLG BT.2020 frame: a ramp of colours."""
    y = np.tile(np.linspace(64, 940, 64, dtype=np.uint16), (32, 1))
    u = np.tile(np.linspace(300, 700, 32, dtype=np.uint16), (16, 1))
    frame = av.VideoFrame(64, 32, "yuv420p10le")
    for plane, data in zip(frame.planes, (y, u, u[::-1].copy()), strict=True):
        rows = np.frombuffer(memoryview(plane), np.uint16).reshape(-1, plane.line_size // 2)
        rows[: data.shape[0], : data.shape[1]] = data
    frame.colorspace, frame.color_primaries, frame.color_trc, frame.color_range = 9, 9, HLG, 1
    return frame


def test_luts_made_ahead_are_read_not_made_again(fresh, monkeypatch):
    made = sdr_luts.prepare()  # the pair's RGB LUT and (HLG) its chroma grid's YUV LUT
    assert {p.parent for p in made} == {fresh} and len(made) == 2
    before = {p: p.stat().st_mtime_ns for p in made}
    assert sdr_luts.prepare() == made  # already there: left as they are
    assert {p: p.stat().st_mtime_ns for p in made} == before

    def no_colour_management(*_):
        raise AssertionError("a LUT made ahead of time was made again")

    monkeypatch.setattr(sdr_luts, "_write", no_colour_management)
    monkeypatch.setattr(sdr_luts, "_write_grid", no_colour_management)
    assert Path(sdr_luts.sdr_lut(HLG, BT2020)).parent == fresh
    assert Path(sdr_luts.grid_lut(*sdr_luts.COMMON_YUV, HLG, BT2020)).parent == fresh
    sdr = ToSdr().i420(_hlg_frame())  # an HDR frame converted through them: whole
    assert sdr.format.name == "yuv420p" and int(sdr.color_trc) == 1
    y, u, _ = ToSdr().planes(_hlg_frame())  # and on the chroma grid
    assert (y.shape, u.shape) == ((32, 64), (16, 32)) and y.dtype == np.uint8


def test_a_lut_made_on_first_use_is_kept_for_the_processes_after(fresh):
    first = Path(sdr_luts.sdr_lut(HLG, BT2020))  # not in LUT_DIR: made now, in a temporary file
    assert first.parent != fresh
    kept = fresh / first.name
    assert kept.read_bytes() == first.read_bytes()
    assert first.read_text().startswith(f"LUT_3D_SIZE {sdr_luts.LUT_POINTS}\n")


def test_a_grid_lut_made_on_first_use_is_kept_and_converts(fresh):
    """Tags not made ahead (here: BT.709's matrix on HLG): the grid LUT is made from the RGB
    LUT on first use, kept, and its frames convert as the whole-frame conversion does."""
    frame = _hlg_frame()
    frame.colorspace = 1
    first = Path(sdr_luts.grid_lut(1, 1, HLG, BT2020))
    assert first.parent != fresh and (fresh / first.name).read_bytes() == first.read_bytes()
    assert first.read_text().startswith(f"LUT_3D_SIZE {sdr_luts.GRID_POINTS}\n")
    grid = ToSdr().planes(frame)
    whole = ToSdr().i420(frame).to_ndarray().reshape(-1)
    difference = np.abs(grid[0].astype(int) - whole[: 64 * 32].reshape(32, 64))
    # measured: 4 levels at most, 0.63 on average (through the chain: 3, 0.54)
    assert difference.max() <= 4 and difference.mean() < 1


def test_a_read_only_install_still_converts(fresh, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(sdr_luts, "LUT_DIR", blocker / "luts")  # cannot be made
    path = Path(sdr_luts.sdr_lut(HLG, BT2020))
    assert path.is_file() and path.read_text().startswith(f"LUT_3D_SIZE {sdr_luts.LUT_POINTS}\n")
    assert not (blocker / "luts").exists()
    sdr = ToSdr().i420(_hlg_frame())
    assert sdr.format.name == "yuv420p"
