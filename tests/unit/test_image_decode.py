"""Tests of a2v_server.media.image: format allowlist, pixel conversions and limits."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media import image as image_mod
from a2v_server.media.image import decode_image, image_size

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _halves(h: int = 40, w: int = 64) -> np.ndarray:
    """RGB picture: left half red, right half blue."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)
    rgb[:, w // 2 :] = (0, 0, 255)
    return rgb


def _encode(rgb_or_rgba: np.ndarray, ext: str, *params: int) -> bytes:
    arr = rgb_or_rgba
    if arr.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
        arr = cv2.cvtColor(arr, code)
    ok, buf = cv2.imencode(ext, arr, list(params))
    assert ok
    return buf.tobytes()


def _assert_halves(rgb: np.ndarray, tol: int) -> None:
    h, w = rgb.shape[:2]
    left = rgb[h // 4 : 3 * h // 4, 2 : w // 2 - 4].reshape(-1, 3).astype(int)
    right = rgb[h // 4 : 3 * h // 4, w // 2 + 4 : w - 2].reshape(-1, 3).astype(int)
    assert np.abs(left - (255, 0, 0)).max() <= tol
    assert np.abs(right - (0, 0, 255)).max() <= tol


@pytest.mark.parametrize(
    ("ext", "params", "tol"),
    [
        (".png", (), 0),
        (".jpg", (cv2.IMWRITE_JPEG_QUALITY, 95), 12),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), 0),  # lossless
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90), 20),  # lossy (VP8)
    ],
)
def test_formats_decode_to_rgb(ext, params, tol):
    data = _encode(_halves(), ext, *params)
    assert image_size(data) == (64, 40)
    rgb = decode_image(data)
    assert rgb.shape == (40, 64, 3) and rgb.dtype == np.uint8
    _assert_halves(rgb, tol)


def test_sample_portrait():
    rgb = decode_image((SAMPLES / "portrait.jpg").read_bytes())
    assert rgb.shape == (512, 512, 3)
    assert 40 < rgb.mean() < 220


def test_alpha_is_composited_on_white():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[:, 15:, 3] = 255  # opaque right half, transparent left half
    rgba[0, 0, 3] = 128
    rgb = decode_image(_encode(rgba, ".png"))
    assert tuple(rgb[5, 5]) == (255, 255, 255)
    assert tuple(rgb[5, 20]) == (255, 0, 0)
    assert abs(int(rgb[0, 0, 1]) - 127) <= 1  # half-transparent red over white


def test_grayscale_and_palette(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    rgb = decode_image(_encode(gray, ".png"))
    assert rgb.shape == (10, 64, 3)
    assert np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)

    src = tmp_path / "src.png"
    src.write_bytes(_encode(_halves(), ".png"))
    pal = tmp_path / "pal.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-pix_fmt", "pal8", str(pal)], check=True
    )
    _assert_halves(decode_image(pal.read_bytes()), 4)


def test_exif_orientation_is_applied():
    bgr = np.zeros((40, 80, 3), np.uint8)
    bgr[:, :40] = (0, 0, 255)  # red left half
    jpeg = _encode(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ".jpg")
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + b"\0\0\0\0"
    payload = b"Exif\0\0" + b"MM\0*\0\0\0\x08" + ifd
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    rgb = decode_image(jpeg[:2] + app1 + jpeg[2:])
    # orientation 6 = rotate 90 degrees clockwise for display: the left half becomes the top
    assert rgb.shape == (80, 40, 3)
    assert rgb[10, 20, 0] > 200 and rgb[70, 20, 0] < 40


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world, not an image",
        b"GIF89a" + b"\0" * 100,
        b"%PDF-1.4\n" + b"\0" * 100,
    ],
    ids=["empty", "text", "gif", "pdf"],
)
def test_unknown_formats_are_invalid(data):
    with pytest.raises(InvalidInput) as err:
        decode_image(data)
    assert err.value.field == "image"
    assert "PNG, JPEG or WebP" in err.value.message


def test_corrupt_data_is_invalid():
    png = _encode(_halves(), ".png")
    rng = np.random.default_rng(1)
    cases = [
        png[:30],  # truncated inside the first chunk
        png[:33] + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),  # garbage after IHDR
        b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),
        b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 8,
    ]
    for data in cases:
        with pytest.raises(InvalidInput) as err:
            decode_image(data)
        assert err.value.field == "image"


def test_too_many_pixels_is_refused_before_decoding(monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("FFmpeg must not be asked to decode an oversized image")

    monkeypatch.setattr(image_mod.av, "open", forbidden)
    # a tiny "decompression bomb": a valid PNG header declaring 100000 x 100000 pixels
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    with pytest.raises(ResourceExhausted):
        decode_image(bomb)
    with pytest.raises(ResourceExhausted) as err:
        decode_image(_encode(_halves(), ".jpg"), max_pixels=1000)
    assert "64x40" in err.value.message
