"""Picture orientation: EXIF orientation codes, display matrices, and turning pixels upright.

Phones store pictures as the sensor saw them and record how to show them: a JPEG, PNG or WebP
in its EXIF Orientation tag (1..8, four of them mirrored), a video in its display matrix
(MP4 ``tkhd``, Matroska projection, H.264/HEVC display orientation). Both describe one of the
eight right-angle rotations and mirrorings of the stored pixels; this module names it by its
EXIF code and applies it, so images and videos share one tested path.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

#: EXIF Orientation values (TIFF tag 0x0112): how the stored rows and columns are to be shown
UPRIGHT = 1  # as stored
MIRROR = 2  # mirrored left-right
ROTATE_180 = 3
FLIP = 4  # mirrored top-bottom
TRANSPOSE = 5  # mirrored along the main diagonal
ROTATE_CW = 6  # turned 90 degrees clockwise
TRANSVERSE = 7  # mirrored along the other diagonal
ROTATE_CCW = 8  # turned 90 degrees counter-clockwise

_EXIF_ORIENTATION_TAG = 0x0112
_SHORT, _LONG = 3, 4


def swaps_sides(orientation: int) -> bool:
    """Whether showing the picture swaps its width and height."""
    return orientation in (TRANSPOSE, ROTATE_CW, TRANSVERSE, ROTATE_CCW)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The stored ``(H, W, ...)`` pixels as they are meant to be shown (a contiguous array)."""
    if orientation == MIRROR:
        view = pixels[:, ::-1]
    elif orientation == ROTATE_180:
        view = pixels[::-1, ::-1]
    elif orientation == FLIP:
        view = pixels[::-1]
    elif swaps_sides(orientation):
        turned = pixels.swapaxes(0, 1)  # TRANSPOSE
        if orientation == ROTATE_CW:
            view = turned[:, ::-1]
        elif orientation == TRANSVERSE:
            view = turned[::-1, ::-1]
        elif orientation == ROTATE_CCW:
            view = turned[::-1]
        else:
            view = turned
    else:
        return pixels
    return np.ascontiguousarray(view)


def orientation_from_display_matrix(matrix: Sequence[int]) -> int:
    """The EXIF code of an FFmpeg display matrix (9 int32, ``AV_PKT_DATA_DISPLAYMATRIX``).

    The matrix maps a stored pixel (p, q) to the shown one: p' = a*p + c*q, q' = b*p + d*q,
    with y pointing down (a=m[0], b=m[1], c=m[3], d=m[4]). Rotations by other angles than
    multiples of 90 degrees are rounded to the nearest one; a degenerate matrix is upright.
    """
    if len(matrix) < 5:
        return UPRIGHT
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    if abs(a) + abs(d) >= abs(b) + abs(c):
        if a == 0 and d == 0:
            return UPRIGHT
        return {(1, 1): UPRIGHT, (-1, 1): MIRROR, (-1, -1): ROTATE_180, (1, -1): FLIP}[
            (_sign(a), _sign(d))
        ]
    return {(1, 1): TRANSPOSE, (1, -1): ROTATE_CW, (-1, -1): TRANSVERSE, (-1, 1): ROTATE_CCW}[
        (_sign(b), _sign(c))
    ]


def orientation_from_rotation(degrees: float) -> int:
    """The EXIF code of a counter-clockwise rotation in degrees (PyAV's ``frame.rotation``)."""
    turns = round(degrees / 90) % 4
    return (UPRIGHT, ROTATE_CCW, ROTATE_180, ROTATE_CW)[turns]


def _sign(value: int) -> int:
    return -1 if value < 0 else 1


def exif_orientation(tiff: bytes | memoryview) -> int:
    """The Orientation tag of an EXIF block (a TIFF header and IFD0), 1 when absent or invalid.

    Reads only IFD0's entries (at most 65535 of 12 bytes): bounded by the block's size.
    """
    data = bytes(tiff[:8]) if len(tiff) >= 8 else b""
    if data.startswith(b"Exif\0\0"):  # some writers keep the JPEG APP1 prefix in PNG/WebP
        return exif_orientation(tiff[6:])
    if data[:4] == b"II*\0":
        order = "<"
    elif data[:4] == b"MM\0*":
        order = ">"
    else:
        return UPRIGHT
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd < 8 or ifd + 2 > len(tiff):
        return UPRIGHT
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    count = min(count, (len(tiff) - ifd - 2) // 12)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind, number = struct.unpack_from(order + "HHI", tiff, entry)
        if tag != _EXIF_ORIENTATION_TAG:
            continue
        if number != 1 or kind not in (_SHORT, _LONG):
            return UPRIGHT
        fmt = order + ("H" if kind == _SHORT else "I")
        (value,) = struct.unpack_from(fmt, tiff, entry + 8)
        return value if 1 <= value <= 8 else UPRIGHT
    return UPRIGHT
