"""Tests of a2v_server.media.image: format allowlist, pixel conversions and limits; metadata
bombs and lying containers (built here at test time) bounded, animations, EXIF orientation."""

from __future__ import annotations

import dataclasses
import io
import struct
import subprocess
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile.hostile_media import (
    EXIF_STORED,
    animated_portrait,
    anmf,
    exif_block,
    exif_oriented_jpeg,
    jpeg_with_exif,
    png_chunk,
    png_metadata_bomb,
    png_with_chunks,
    vp8_keyframe_header,
    vp8l_solid,
    vp8x,
    webp_chunk,
    webp_file,
)

from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media import image as image_mod
from a2v_server.media.image import decode_image, image_size
from a2v_server.media.image_files import read_still

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


# --- round two: metadata bombs, lying containers, animations, orientation ------------------------
_PEAK_SCRIPT = """
import json, resource, sys
from a2v_server.media.image import decode_image
from a2v_server.errors import A2VError
data = open(sys.argv[1], "rb").read()
warm = open(sys.argv[2], "rb").read()
decode_image(warm)  # codecs loaded, allocator warmed: what follows is the file's own cost
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    shape, outcome = list(decode_image(data, max_pixels=int(sys.argv[3])).shape), "ok"
except A2VError as exc:
    shape, outcome = None, type(exc).__name__ + ": " + exc.message
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "shape": shape, "outcome": outcome}))
"""


def _peak_growth(tmp_path: Path, data: bytes, max_pixels: int = 40_000_000) -> dict:
    """Decode ``data`` in a fresh interpreter: its peak memory growth (MB) and outcome."""
    import json
    import sys

    blob, warm = tmp_path / "image.bin", tmp_path / "warm.png"
    blob.write_bytes(data)
    warm.write_bytes(_encode(_halves(), ".png"))
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(blob), str(warm), str(max_pixels)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


#: a decode of a 64x40 picture may grow the process by this much, whatever the file holds
MEMORY_BOUND_MB = 100


@pytest.mark.parametrize("kind", ["zTXt", "iTXt", "iCCP"])
def test_compressed_png_metadata_is_never_inflated(tmp_path, kind):
    # ~1 MB of PNG whose text / ICC chunk inflates to 1 GiB: FFmpeg kept it all in the frame's
    # metadata (peak +2 GB); the chunk is now dropped before FFmpeg sees the file
    bomb = png_metadata_bomb(_encode(_halves(), ".png"), kind)
    assert len(bomb) < 1_200_000
    result = _peak_growth(tmp_path, bomb)
    assert result["outcome"] == "ok" and result["shape"] == [40, 64, 3]
    assert result["growth_mb"] < MEMORY_BOUND_MB, result
    still = read_still(bomb)
    assert kind.encode() not in still.data and len(still.data) < 2000


def test_png_keeps_only_the_chunks_that_make_the_picture():
    png = _encode(_halves(), ".png")
    extra = [
        png_chunk(b"tEXt", b"Title\0hello"),
        png_chunk(b"eXIf", exif_block(1)),
        png_chunk(b"zzZz", b"unknown ancillary"),
        png_chunk(b"gAMA", struct.pack(">I", 45455)),
    ]
    still = read_still(png_with_chunks(png, *extra))
    kinds = []
    pos = 8
    while pos < len(still.data):
        (length,) = struct.unpack(">I", still.data[pos : pos + 4])
        kinds.append(still.data[pos + 4 : pos + 8])
        pos += 12 + length
    assert set(kinds) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    _assert_halves(decode_image(png_with_chunks(png, *extra)), 0)


def test_many_tiny_chunks_cost_bounded_time():
    png = _encode(_halves(), ".png")
    flood = png_with_chunks(png, png_chunk(b"tEXt", b"") * (20 * 2**20 // 12))  # 20 MiB
    start = time.monotonic()
    _assert_halves(decode_image(flood), 0)
    jpeg = _encode(_halves(), ".jpg")
    with pytest.raises(InvalidInput, match="segments"):
        decode_image(jpeg[:2] + b"\xff\xfe\x00\x02" * (5 * 2**20) + jpeg[2:])
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "lie",
    [
        lambda: webp_file(vp8x(100, 100, 0x10), webp_chunk(b"VP8L", vp8l_solid(16000, 16000))),
        lambda: webp_file(vp8x(100, 100), webp_chunk(b"VP8 ", vp8_keyframe_header(16000, 16000))),
        lambda: webp_file(  # an animation whose first frame header says 100x100
            vp8x(100, 100, 0x02),
            webp_chunk(b"ANIM", bytes(6)),
            anmf(webp_chunk(b"VP8L", vp8l_solid(16000, 16000)), width=100, height=100),
        ),
    ],
    ids=["vp8x-over-vp8l", "vp8x-over-vp8", "anmf-over-vp8l"],
)
def test_webp_is_sized_from_its_bitstream_not_its_canvas(monkeypatch, lie):
    # the canvas (VP8X, ANMF) declares 100x100; the bitstream that would be decoded is
    # 16000x16000 (FFmpeg decoded it in full, +1 GB, before the size was checked)
    data = lie()
    assert image_size(data) == (16000, 16000)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("FFmpeg must not be asked to decode an oversized image")

    monkeypatch.setattr(image_mod.av, "open", forbidden)
    with pytest.raises(ResourceExhausted) as err:
        decode_image(data)
    assert "16000x16000" in err.value.message and "send a smaller image" in err.value.message


def test_the_decoder_itself_is_bounded(monkeypatch, tmp_path):
    """Were the size read in Python wrong, the codec context's max_pixels still refuses."""
    data = webp_file(webp_chunk(b"VP8L", vp8l_solid(3000, 3000)))  # 9 MP
    real = image_mod.read_still

    def fooled(blob):
        still = real(blob)
        return dataclasses.replace(still, width=100, height=100)

    monkeypatch.setattr(image_mod, "read_still", fooled)
    with pytest.raises(InvalidInput) as err:
        decode_image(data, max_pixels=1_000_000)
    assert "could not be decoded" in err.value.message
    assert "send a PNG, JPEG or WebP file" in err.value.message


def test_a_webp_within_the_limit_decodes_with_bounded_memory(tmp_path):
    result = _peak_growth(tmp_path, webp_file(webp_chunk(b"VP8L", vp8l_solid(2000, 2000))))
    assert result["shape"] == [2000, 2000, 3]
    # the picture (4 MP) is decoded, converted and composited: about 12 bytes a pixel at most
    assert result["growth_mb"] < 4 * 12 + 20, result


def test_animated_webp_gives_its_first_frame():
    red = webp_chunk(b"VP8L", vp8l_solid(48, 32, (255, 250, 0, 0)))
    blue = webp_chunk(b"VP8L", vp8l_solid(48, 32, (255, 0, 0, 250)))
    data = webp_file(
        vp8x(48, 32, 0x12),
        webp_chunk(b"ANIM", bytes(6)),
        anmf(red, width=48, height=32),
        anmf(blue, width=48, height=32),
    )
    rgb = decode_image(data)
    assert rgb.shape == (32, 48, 3)
    assert tuple(rgb[16, 24]) == (250, 0, 0)


def test_animated_files_made_by_ffmpeg(tmp_path):
    for kind in ("webp", "apng"):
        rgb = decode_image(animated_portrait(tmp_path, kind))
        assert rgb.shape == (256, 256, 3) and 40 < rgb.mean() < 220


def test_webp_with_alpha_keeps_its_alpha():
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 2] = 255  # blue
    rgba[:, 24:, 3] = 255  # opaque right half, transparent left half
    data = _encode(rgba, ".webp", cv2.IMWRITE_WEBP_QUALITY, 90)
    assert b"ALPH" in data
    data = webp_file(data[12:], webp_chunk(b"EXIF", exif_block(1)))  # metadata is dropped
    rgb = decode_image(data)
    assert np.abs(rgb[16, 4].astype(int) - 255).max() < 12  # white where transparent
    assert np.abs(rgb[16, 40].astype(int) - (0, 0, 255)).max() < 24


def _quadrants(h: int = 48, w: int = 80) -> np.ndarray:
    """An upright picture: red, green / blue, white quadrants (top-left is red)."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[: h // 2, : w // 2] = (255, 0, 0)
    rgb[: h // 2, w // 2 :] = (0, 255, 0)
    rgb[h // 2 :, : w // 2] = (0, 0, 255)
    rgb[h // 2 :, w // 2 :] = (255, 255, 255)
    return rgb


def _assert_upright(rgb: np.ndarray, h: int = 48, w: int = 80) -> None:
    assert rgb.shape == (h, w, 3)
    expected = _quadrants(h, w).astype(int)
    for y in (h // 4, 3 * h // 4):
        for x in (w // 4, 3 * w // 4):
            block = rgb[y - 4 : y + 4, x - 4 : x + 4].reshape(-1, 3).astype(int)
            assert np.abs(block - expected[y, x]).mean(axis=0).max() < 24, (y, x)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_comes_out_upright(orientation):
    data = exif_oriented_jpeg(_quadrants(), orientation)
    _assert_upright(decode_image(data))
    # the test's own table agrees with an independent reader (Pillow, installed with
    # scikit-image for the tests)
    image_ops = pytest.importorskip("PIL.ImageOps")
    pil_image = pytest.importorskip("PIL.Image")
    _assert_upright(np.asarray(image_ops.exif_transpose(pil_image.open(io.BytesIO(data)))))


@pytest.mark.parametrize("big_endian", [True, False], ids=["MM", "II"])
def test_exif_byte_order_and_other_tags_first(big_endian):
    stored = _encode(EXIF_STORED[5](_quadrants()), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    data = jpeg_with_exif(stored, 5, big_endian=big_endian, entries=40)
    _assert_upright(decode_image(data))


@pytest.mark.parametrize("orientation", [2, 6, 7])
def test_png_and_webp_exif_orientation_is_applied(orientation):
    stored = np.ascontiguousarray(EXIF_STORED[orientation](_quadrants()))
    png = png_with_chunks(_encode(stored, ".png"), png_chunk(b"eXIf", exif_block(orientation)))
    _assert_upright(decode_image(png))
    bitstream = _encode(stored, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101)[12:]  # its VP8L chunk
    exif = webp_chunk(b"EXIF", exif_block(orientation))
    canvas = vp8x(stored.shape[1], stored.shape[0], 0x08)
    _assert_upright(decode_image(webp_file(canvas, bitstream, exif)))


@pytest.mark.parametrize(
    "tiff",
    [b"", b"MM\0*", b"MM\0*\xff\xff\xff\xff", b"II*\0\x08\0\0\0\xff\xff", exif_block(9)],
    ids=["empty", "no-ifd", "ifd-past-the-end", "count-past-the-end", "orientation-9"],
)
def test_broken_exif_is_ignored(tiff):
    stored = _encode(_quadrants(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    payload = b"Exif\0\0" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    _assert_upright(decode_image(stored[:2] + app1 + stored[2:]))


def test_jpeg_metadata_segments_are_dropped():
    jpeg = _encode(_halves(), ".jpg")
    comment = b"\xff\xfe" + struct.pack(">H", 9) + b"comment"
    xmp = b"\xff\xe1" + struct.pack(">H", 34) + b"http://ns.adobe.com/xap/1.0/\0<x/>"
    still = read_still(jpeg[:2] + comment + xmp + jpeg[2:])
    assert b"comment" not in still.data and b"adobe" not in still.data
    _assert_halves(decode_image(jpeg[:2] + comment + xmp + jpeg[2:]), 12)


#: a VP8 key frame (64x64) whose first partition is said to hold 100000 bytes: it holds 50
_VP8_PARTITION_PAST_THE_END = (
    ((100_000 << 5) | 0x10).to_bytes(3, "little") + b"\x9d\x01\x2a\x40\0\x40\0" + bytes(50)
)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (lambda: webp_file(webp_chunk(b"VP8 ", _VP8_PARTITION_PAST_THE_END)), "corrupt WEBP data"),
        (lambda: _encode(_halves(), ".png")[:60], "corrupt PNG"),
        (lambda: webp_file(vp8x(64, 64), webp_chunk(b"XMP ", b"<x/>")), "holds no picture"),
    ],
    ids=["webp-vp8-garbage", "png-cut-in-idat", "webp-without-bitstream"],
)
def test_decode_errors_say_what_to_send_not_ffmpeg_text(data, phrase):
    with pytest.raises(InvalidInput) as err:
        decode_image(data())
    message = err.value.message
    assert phrase in message and "send a PNG, JPEG or WebP file" in message
    for internal in ("Errno", "Invalid data found", "avcodec", "returned"):
        assert internal not in message


def test_progressive_jpeg_scans_are_bounded():
    """Each scan is a walk over every block: thousands of them are an attack on time."""
    noise = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
    jpeg = _encode(noise, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    last_scan = jpeg[jpeg.rindex(b"\xff\xda") : -2]  # an AC refinement pass, repeated
    assert decode_image(jpeg[:-2] + last_scan * 80 + b"\xff\xd9").shape == (200, 200, 3)
    with pytest.raises(InvalidInput, match="more than 100 scans"):
        decode_image(jpeg[:-2] + last_scan * 200 + b"\xff\xd9")
