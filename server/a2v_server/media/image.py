"""Decoding the caller's portrait image (PNG, JPEG or WebP) into an upright RGB array.

The format is chosen from the magic bytes and handed to FFmpeg as an explicit demuxer: letting
FFmpeg probe arbitrary user bytes would expose every demuxer it has (playlists, network
protocols, exotic codecs) to untrusted input. Before FFmpeg sees anything, ``image_files``
walks the file in Python: the size of the picture the decoder will really produce (from the
bitstream's own header, not a container's claim) is checked against the pixel limit, and
FFmpeg is given only the chunks that hold the picture, never the metadata (a compressed text
or ICC chunk of a few kilobytes can inflate to gigabytes). The decoder itself is bounded too
(``max_pixels`` on its codec context), and the decoded frame is checked again.

Animated files (APNG, animated WebP) give their first picture. The EXIF orientation (1..8,
mirrored ones included) is applied, so the picture comes out as a viewer shows it.
"""

from __future__ import annotations

import io
import logging

import av
import numpy as np

from a2v_server.errors import ResourceExhausted
from a2v_server.media.image_files import (
    ACCEPTED_IMAGE_FORMATS,
    StillImage,
    invalid,
    read_still,
)
from a2v_server.media.orientation import apply_orientation

__all__ = ["ACCEPTED_IMAGE_FORMATS", "decode_image", "image_size"]

log = logging.getLogger(__name__)

#: rows composited at a time: bounds the temporary arrays of a large transparent image
_BLEND_ROWS = 256


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of the picture in a PNG/JPEG/WebP file as stored, without decoding
    it: from the bitstream's own header (a WebP's VP8X canvas is not trusted)."""
    still = read_still(data)
    return still.width, still.height


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise invalid(f"the image declares an empty size {width}x{height}")
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
    rgba = frame.to_ndarray(format="rgba")
    if rgba[..., 3].min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    # Portraits with transparent backgrounds look best on a plain light background. Integer
    # arithmetic a few rows at a time: rgb*a + 255*(255-a) <= 65025 fits in uint16.
    rgb = np.empty((*rgba.shape[:2], 3), np.uint8)
    for top in range(0, rgba.shape[0], _BLEND_ROWS):
        rows = rgba[top : top + _BLEND_ROWS].astype(np.uint16)
        alpha = rows[..., 3:4]
        blended = rows[..., :3] * alpha + 255 * (255 - alpha) + 127
        rgb[top : top + _BLEND_ROWS] = blended // 255
    return rgb


def _decode_frame(still: StillImage, max_pixels: int) -> av.VideoFrame:
    # max_pixels bounds the decoder itself (its codec context, and the one that probes the
    # stream while the container opens), whatever the file's headers said.
    limit = {"max_pixels": str(max_pixels)}
    try:
        with av.open(
            io.BytesIO(still.data),
            mode="r",
            format=still.demuxer,
            options=limit,
            metadata_errors="replace",  # tags are user bytes: never fail on their text
        ) as container:
            if not container.streams.video:
                raise invalid("the file contains no picture")
            stream = container.streams.video[0]
            stream.codec_context.options = dict(limit)
            frame = next(container.decode(stream), None)
    except av.error.FFmpegError as exc:
        log.info(
            "image decode failed (%s, %dx%d): %s", still.demuxer, still.width, still.height, exc
        )
        name = still.format_name
        raise invalid(
            f"corrupt {name.upper()} data: the {name} picture could not be decoded "
            "(damaged or truncated file)"
        ) from None
    if frame is None:
        raise invalid("the file contains no complete picture (truncated?)")
    return frame


def decode_image(data: bytes, *, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode a PNG, JPEG or WebP file into an upright ``(H, W, 3)`` uint8 RGB array.

    Transparency is composited on white; grayscale and palette images are expanded to RGB; the
    EXIF orientation is applied; an animated file gives its first picture.

    Raises:
        InvalidInput: empty, unrecognised or corrupt data (``field="image"``).
        ResourceExhausted: the picture has more than ``max_pixels`` pixels.
    """
    if not data:
        raise invalid("the image is empty")
    still = read_still(data)
    _check_pixels(still.width, still.height, max_pixels)
    if still.broken:
        raise invalid(f"{still.broken} (truncated?)")
    frame = _decode_frame(still, max_pixels)
    _check_pixels(frame.width, frame.height, max_pixels)
    if (frame.width, frame.height) != (still.width, still.height):
        log.info(
            "%s decoder made %dx%d of a file that declares %dx%d",
            still.demuxer,
            frame.width,
            frame.height,
            still.width,
            still.height,
        )
    rgb = apply_orientation(_to_rgb(frame), still.orientation)
    log.debug(
        "decoded %s image %dx%d (%s, orientation %d%s)",
        still.demuxer,
        frame.width,
        frame.height,
        frame.format.name,
        still.orientation,
        ", first frame of an animation" if still.animated else "",
    )
    return rgb
