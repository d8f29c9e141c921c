"""lipsync/1/yuv_frames.py: packed I420 <-> RGB under the frame's own matrix, checked against
FFmpeg's swscale (what the server's decoder and encoder use)."""

from __future__ import annotations

import numpy as np
import pytest
from media import i420_of
from skimage import data
from yuv_frames import YuvFrames, cut, even_box, planes


@pytest.mark.parametrize("matrix", [1, 6])
def test_rgb_is_the_pictures_own_colours(matrix):
    """The astronaut through swscale's I420 and back through ours: the colours she had (mean
    error under 2 levels; the other matrix is 4-5 levels off), and back to I420 the samples
    swscale gives."""
    rgb = np.ascontiguousarray(data.astronaut())
    packed = i420_of(rgb, matrix)
    mine = YuvFrames(matrix).to_rgb(packed)
    assert mine.shape == rgb.shape and mine.dtype == np.uint8
    assert np.abs(mine.astype(int) - rgb).mean() < 2.0
    into = np.empty_like(rgb)  # the same conversion, into an array of the caller's
    assert YuvFrames(matrix).to_rgb(packed, out=into) is into and np.array_equal(into, mine)
    other = YuvFrames({1: 6, 6: 1}[matrix]).to_rgb(packed)
    assert np.abs(other.astype(int) - rgb).mean() > 3.0
    back = packed.copy()
    YuvFrames(matrix).write(back, mine, (0, 0))
    for a, b in zip(planes(back), planes(packed), strict=True):
        assert np.abs(a.astype(int) - b).mean() < 0.5


def test_write_changes_only_its_box_and_cut_takes_one():
    rgb = np.ascontiguousarray(data.astronaut())
    packed = i420_of(rgb, 1)
    box = even_box((101, 51, 163, 99), 512, 512)
    assert box == (100, 50, 164, 100)
    out = packed.copy()
    YuvFrames(1).write(out, np.zeros((50, 64, 3), np.uint8), box[:2])  # black
    y, u, v = planes(out)
    assert (y[50:100, 100:164] == 16).all() and (u[25:50, 50:82] == 128).all()
    outside = np.ones(y.shape, bool)
    outside[50:100, 100:164] = False
    np.testing.assert_array_equal(y[outside], planes(packed)[0][outside])
    region = cut(out, box)
    assert region.shape == (75, 64)
    np.testing.assert_array_equal(planes(region)[0], y[50:100, 100:164])
    np.testing.assert_array_equal(planes(region)[2], v[25:50, 50:82])


def test_an_unknown_matrix_is_refused():
    with pytest.raises(ValueError, match="COLOUR_MATRIX 9"):
        YuvFrames(9)
