"""media/hdr: HDR video made SDR on the chroma grid (``ToSdr.planes``) shows what the whole-frame
LUT conversion (``ToSdr.i420``, itself checked against the SDR original in test_video_source)
shows, on a photo with skin, sharp edges and saturated colours, and on grey detail that a
smooth approximation of the tone curve would flatten."""

from __future__ import annotations

import functools

import av
import cv2
import numpy as np
import pytest
from media import hdr_frames
from skimage import data

from a2v_server.media import hdr
from a2v_server.media.hdr import ToSdr

TRANSFERS = ["arib-std-b67", "smpte2084"]  # HLG (phones), PQ (HDR10)
PHOTO = np.s_[:, :256]
STRIPES, RAMP = np.s_[98:142, 258:318], np.s_[146:190, 258:382]


def _hard_picture() -> np.ndarray:
    """384x192 SDR RGB: the astronaut photo (skin, teeth, a flag, a white helmet on black),
    then 1-pixel black and white stripes and a grey ramp."""
    astronaut = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    picture = np.zeros((192, 384, 3), np.uint8)
    picture[:, :256] = astronaut[32:224]
    picture[96:144, 256:320] = np.where((np.arange(64) % 2)[None, :, None], 230, 20)
    picture[144:, 256:] = np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None]
    return picture


@functools.cache
def _hdr(transfer: str) -> av.VideoFrame:
    """``_hard_picture`` made HDR (~1.5 s of FFmpeg's colour management each: made once)."""
    return next(hdr_frames([_hard_picture()], transfer))


def _tagged_like(frame: av.VideoFrame, model: av.VideoFrame) -> av.VideoFrame:
    for tag in ("colorspace", "color_range", "color_trc", "color_primaries"):
        setattr(frame, tag, getattr(model, tag))
    return frame


def _whole(frame: av.VideoFrame, size=None) -> list[np.ndarray]:
    """The whole-frame conversion's planes, cut to even sides as ``planes`` cuts them."""
    out = ToSdr().i420(frame, size)
    planes = []
    for index, plane in enumerate(out.planes):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, -1)
        shift = 0 if index == 0 else 1
        planes.append(rows[: (out.height & ~1) >> shift, : (out.width & ~1) >> shift])
    return planes


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b) ** 2)
    return 10 * np.log10(255**2 / max(error, 1e-6))


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_a_photo_on_the_chroma_grid_shows_what_the_whole_frame_conversion_shows(transfer):
    frame = _hdr(transfer)
    grid, whole = ToSdr().planes(frame), _whole(frame)
    for index, (got, expected) in enumerate(zip(grid, whole, strict=True)):
        assert got.shape == expected.shape and got.dtype == np.uint8
        part = PHOTO if index == 0 else np.s_[:, :128]
        # measured: luma 46.4 / 48.9 dB (HLG / PQ), chroma 46.5-48.4 dB, p99 within 5 levels
        assert _psnr(got[part], expected[part]) > 44, index
        assert np.percentile(np.abs(got[part].astype(int) - expected[part]), 99) <= 6, index


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_grey_detail_keeps_its_levels(transfer):
    """Black and white stripes a pixel wide (text, hair, an eyelash) and a ramp: each sample
    takes the grey curve's own level. Spread from its block's mean by the curve's slope
    instead, the stripes were up to 32 (HLG) and 51 (PQ) levels off."""
    frame = _hdr(transfer)
    luma, expected = ToSdr().planes(frame)[0], _whole(frame)[0]
    for part in (STRIPES, RAMP):
        assert np.abs(luma[part].astype(int) - expected[part]).max() <= 2


def test_odd_sides_and_a_smaller_size():
    """A 101x67 frame comes out at 100x66 (even sides, as every picture); asked for half its
    size, the picture is the whole-frame conversion's at that size."""
    hdr = _hdr("arib-std-b67")
    frame = _tagged_like(hdr.reformat(101, 67, interpolation="AREA"), hdr)
    y, u, v = ToSdr().planes(frame)
    assert (y.shape, u.shape, v.shape) == ((66, 100), (33, 50), (33, 50))
    small = ToSdr().planes(frame, (50, 34))
    for got, expected in zip(small, _whole(frame, (50, 34)), strict=True):
        assert got.shape == expected.shape
        # measured 46.1 / 49.9 / 48.8 dB (the whole-frame conversion scales in its own
        # swscale pass, from RGB)
        assert _psnr(got, expected) > 42


def test_other_samplings_take_the_whole_frame_conversion():
    """4:2:2 HDR (ProRes masters): converted whole, sample for sample as ``i420``."""
    frame = _hdr("arib-std-b67")
    wide = _tagged_like(frame.reformat(format="yuv422p10le"), frame)
    for got, expected in zip(ToSdr().planes(wide), _whole(wide), strict=True):
        assert np.array_equal(got, expected)


def test_a_closed_videos_grid_serves_the_next_one(monkeypatch):
    """A video's chroma grid goes back to a pool when it closes: the next video of the same
    size and tags converts through it (no LUT to parse, no graphs to build: ~170 ms its
    first picture waited for), to the same samples; a video of another size builds its own."""
    frame = _hdr("arib-std-b67")
    first = ToSdr()
    expected = [p.copy() for p in first.planes(frame)]
    first.close()

    def no_new_grid(*_):
        raise AssertionError("a grid was built although the pool held one")

    monkeypatch.setattr(hdr._ChromaGrid, "__init__", no_new_grid)
    second = ToSdr()
    for got, want in zip(second.planes(frame), expected, strict=True):
        assert np.array_equal(got, want)
    other = _tagged_like(frame.reformat(200, 100, interpolation="AREA"), frame)
    with pytest.raises(AssertionError, match="pool held one"):
        ToSdr().planes(other)
    second.close()
