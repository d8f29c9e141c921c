"""Decoding the caller's portrait image (PNG, JPEG or WebP) into an RGB array.

The format is chosen from the magic bytes and handed to FFmpeg as an explicit demuxer: letting
FFmpeg probe arbitrary user bytes would expose every demuxer it has (playlists, network
protocols, exotic codecs) to untrusted input. Dimensions are read from the file header in
Python before FFmpeg decodes anything, so a small file declaring a gigantic canvas (a
decompression bomb) is refused without allocating its pixels.
"""

from __future__ import annotations

import io
import logging
import struct

import av
import numpy as np

from a2v_server.errors import InvalidInput, ResourceExhausted

log = logging.getLogger(__name__)

ACCEPTED_IMAGE_FORMATS = "PNG, JPEG or WebP"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry the dimensions (all SOFn except DHT/JPG/DAC)
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(
        f"could not decode the image: {reason}; send a {ACCEPTED_IMAGE_FORMATS} file",
        field="image",
    )


def _detect(data: bytes) -> str:
    """Return the FFmpeg demuxer for ``data`` or raise InvalidInput."""
    if data.startswith(_PNG_MAGIC):
        return "png_pipe"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg_pipe"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp_pipe"
    raise _invalid("unsupported or unrecognised format")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _invalid("truncated PNG header")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _invalid("corrupt JPEG marker structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header: broken file
            break
        pos += 2 + length
    raise _invalid("no JPEG frame header found (truncated or corrupt file)")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk, body = data[12:16], data[20:]
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(body) >= 10:
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return width, height
    raise _invalid("truncated or corrupt WebP header")


_SIZE_READERS = {"png_pipe": _png_size, "jpeg_pipe": _jpeg_size, "webp_pipe": _webp_size}


def image_size(data: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` from the header of a PNG/JPEG/WebP file without decoding it."""
    return _SIZE_READERS[_detect(data)](data)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise _invalid(f"the image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ResourceExhausted(
            f"the image is {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}; send a smaller image (a portrait of about 512x512 is enough)",
            field="image",
        )


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert any decoded pixel format to RGB, compositing transparency on white."""
    fmt = frame.format
    has_alpha = fmt.has_palette or any(c.is_alpha for c in fmt.components)
    if not has_alpha:
        return frame.to_ndarray(format="rgb24")
    rgba = frame.to_ndarray(format="rgba").astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    # Portraits with transparent backgrounds look best on a plain light background.
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _apply_rotation(rgb: np.ndarray, frame: av.VideoFrame) -> np.ndarray:
    # FFmpeg exposes a JPEG's EXIF orientation as a display matrix; phone photos rely on it.
    try:
        rotation = int(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return rgb
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def decode_image(data: bytes, *, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode a PNG, JPEG or WebP file into an ``(H, W, 3)`` uint8 RGB array.

    Transparency is composited on white; grayscale and palette images are expanded to RGB; a
    JPEG's EXIF orientation is applied when FFmpeg reports it.

    Raises:
        InvalidInput: empty, unrecognised or corrupt data (``field="image"``).
        ResourceExhausted: the header declares more than ``max_pixels`` pixels.
    """
    if not data:
        raise _invalid("the image is empty")
    demuxer = _detect(data)
    width, height = _SIZE_READERS[demuxer](data)
    _check_pixels(width, height, max_pixels)
    # max_pixels also bounds the decoder itself, in case the header parse and FFmpeg disagree.
    options = {"max_pixels": str(max_pixels)}
    try:
        with av.open(
            io.BytesIO(data),
            mode="r",
            format=demuxer,
            options=options,
            metadata_errors="replace",  # tags are user bytes: never fail on their text
        ) as container:
            if not container.streams.video:
                raise _invalid("the file contains no picture")
            frame = next(container.decode(video=0), None)
    except av.error.FFmpegError as exc:
        log.info("image decode failed (%s, %dx%d): %s", demuxer, width, height, exc)
        raise _invalid(f"corrupt {demuxer.removesuffix('_pipe').upper()} data") from exc
    if frame is None:
        raise _invalid("the file contains no complete picture (truncated?)")
    _check_pixels(frame.width, frame.height, max_pixels)
    rgb = _apply_rotation(_to_rgb(frame), frame)
    log.debug("decoded %s image %dx%d (%s)", demuxer, frame.width, frame.height, frame.format.name)
    return rgb
