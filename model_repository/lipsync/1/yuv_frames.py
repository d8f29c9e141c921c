"""Frames as packed I420, in and out: the server's own samples, half the bytes of RGB.

The server keeps the speaker video's YUV and sends the face window as it is (FRAMES_I420);
the model works in RGB and answers with the changed region in YUV again (FRAMES_I420 out), so
no colour conversion happens in the server and every sample the model did not change comes
back bit for bit. Converting here both ways with one matrix keeps the colours of what was
re-drawn level with the untouched pixels around it.

Packed I420 is PyAV's ``yuv420p`` ndarray: shape (height * 3 // 2, width), Y rows, then the
U plane, then the V plane, each (height // 2, width // 2) row-major; even sizes; limited range
(Y 16-235, U and V 16-240). The matrix is COLOUR_MATRIX, an AVCOL_SPC number (libavutil's
pixfmt.h): 1 BT.709, 5 and 6 BT.601. Chroma is taken at the centre of its 2x2 block both ways
(bilinear up, the block's mean down); what the model re-draws is a few dozen pixels around the
mouth, where a quarter-pixel of chroma siting does not show.
"""

from __future__ import annotations

import cv2
import numpy as np

#: AVCOL_SPC number -> (Kr, Kb) of its luma weights
MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114)}

Box = tuple[int, int, int, int]


def planes(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of a packed I420 array."""
    height, width = packed.shape[0] * 2 // 3, packed.shape[1]
    chroma = packed[height:].reshape(-1)
    n = (height // 2) * (width // 2)
    u = chroma[:n].reshape(height // 2, width // 2)
    v = chroma[n : 2 * n].reshape(height // 2, width // 2)
    return packed[:height], u, v


def i420_shape_error(packed: np.ndarray) -> str | None:
    """Why ``packed`` (one frame) is not packed I420 of an even size, or None."""
    if packed.ndim != 2 or packed.shape[0] % 3 or packed.shape[1] % 2:
        return f"a frame of shape {packed.shape} is not packed I420 (rows = height * 3 / 2)"
    height = packed.shape[0] * 2 // 3
    if height % 2 or height < 2:
        return f"packed I420 needs an even height of at least 2, got {height}"
    return None


def cut(packed: np.ndarray, box: Box) -> np.ndarray:
    """The packed I420 of ``box`` (even edges, inside the picture), a copy."""
    x0, y0, x1, y1 = box
    y, u, v = planes(packed)
    out = np.empty(((y1 - y0) * 3 // 2, x1 - x0), np.uint8)
    ty, tu, tv = planes(out)
    ty[...] = y[y0:y1, x0:x1]
    tu[...] = u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    tv[...] = v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    return out


def even_box(box: Box, width: int, height: int) -> Box:
    """``box`` grown to even edges (a whole number of chroma blocks), inside width x height."""
    x0, y0, x1, y1 = box
    return x0 & ~1, y0 & ~1, min(width, (x1 + 1) & ~1), min(height, (y1 + 1) & ~1)


class YuvFrames:
    """I420 <-> RGB under one matrix (limited range)."""

    def __init__(self, matrix: int = 1) -> None:
        if matrix not in MATRICES:
            raise ValueError(f"COLOUR_MATRIX {matrix} is not one of {sorted(MATRICES)}")
        kr, kb = MATRICES[matrix]
        kg = 1.0 - kr - kb
        # RGB (0-255) -> Y'CbCr, limited range
        forward = np.array(
            [
                [kr, kg, kb],
                [-kr / (1 - kb) / 2, -kg / (1 - kb) / 2, 0.5],
                [0.5, -kg / (1 - kr) / 2, -kb / (1 - kr) / 2],
            ]
        ) * np.array([[219.0 / 255], [224.0 / 255], [224.0 / 255]])
        offset = np.array([16.0, 128.0, 128.0])
        self._to_yuv = np.hstack([forward, offset[:, None]]).astype(np.float32)
        inverse = np.linalg.inv(forward)
        self._to_rgb = np.hstack([inverse, (-inverse @ offset)[:, None]]).astype(np.float32)

    def to_rgb(self, packed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The RGB picture (height, width, 3) of a packed I420 one; into ``out`` (contiguous,
        uint8) when given."""
        y, u, v = planes(packed)
        size = (y.shape[1], y.shape[0])
        up = [cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in (u, v)]
        return cv2.transform(cv2.merge([np.ascontiguousarray(y), *up]), self._to_rgb, dst=out)

    def write(self, packed: np.ndarray, rgb: np.ndarray, at: tuple[int, int]) -> None:
        """Write the RGB pixels ``rgb`` (even height and width) as YUV into ``packed``, their
        top-left pixel at ``at`` (x, y, even), in place."""
        height, width = rgb.shape[:2]
        x, y = at
        yuv = cv2.transform(rgb.astype(np.float32), self._to_yuv)
        chroma = cv2.resize(yuv[..., 1:], (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        ty, tu, tv = planes(packed)
        ty[y : y + height, x : x + width] = np.clip(np.rint(yuv[..., 0]), 0, 255)
        cx, cy = x // 2, y // 2
        tu[cy : cy + height // 2, cx : cx + width // 2] = np.clip(np.rint(chroma[..., 0]), 0, 255)
        tv[cy : cy + height // 2, cx : cx + width // 2] = np.clip(np.rint(chroma[..., 1]), 0, 255)
