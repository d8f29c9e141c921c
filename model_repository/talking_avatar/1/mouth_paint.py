"""Painting inside the warped mouth (pure numpy/OpenCV): the dark interior with a hint of upper
teeth, the upper teeth's edges for F/V, and the seam of pressed lips (M/B/P).

Each function paints in place into ``roi``, the warped region of interest of one frame, given
``inner``: the displaced inner-lip points in ROI-local pixels (rows of ``INNER_LIPS``).
"""

from __future__ import annotations

import cv2
import numpy as np
from shared import (
    INNER_LEFT,
    INNER_LIPS,
    INNER_LOWER_LIP,
    INNER_LOWER_MIDDLE,
    INNER_RIGHT,
    INNER_UPPER_LIP,
    INNER_UPPER_MIDDLE,
)

_INTERIOR_EDGE = np.array([96.0, 36.0, 38.0])  # RGB near the lips: dark red
_INTERIOR_DEEP = np.array([22.0, 8.0, 9.0])  # RGB deep inside: brown-black
_TEETH = np.array([236.0, 232.0, 220.0])  # RGB of the upper-teeth hint
# Rows of lm[INNER_LIPS] along the upper and the lower inner lip line, corner to corner.
_INNER_UPPER_ROWS = [i - INNER_LIPS[0] for i in (INNER_RIGHT, *INNER_UPPER_LIP, INNER_LEFT)]
_INNER_LOWER_ROWS = [
    i - INNER_LIPS[0] for i in (INNER_RIGHT, *reversed(INNER_LOWER_LIP), INNER_LEFT)
]


def paint_seam(
    roi: np.ndarray,
    inner: np.ndarray,
    weight: float,
    *,
    width: float,
    src_gap: float,
    lip_rgb: np.ndarray,
) -> None:
    """Pressed lips: lip colour over what is left between them, and a thin dark seam.

    ``width`` is the mouth width and ``src_gap`` the portrait's own gap between its inner lips
    (pixels); ``lip_rgb`` is the portrait's lip colour (RGB).
    """
    line = (inner[_INNER_UPPER_ROWS] + inner[_INNER_LOWER_ROWS]) / 2  # between the lips
    half = max(0.5 * src_gap, 0.0) + 0.03 * width
    bx0 = max(int(np.floor(line[:, 0].min())) - 1, 0)
    bx1 = min(int(np.ceil(line[:, 0].max())) + 2, roi.shape[1])
    by0 = max(int(np.floor(line[:, 1].min() - half)) - 2, 0)
    by1 = min(int(np.ceil(line[:, 1].max() + half)) + 3, roi.shape[0])
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return
    ys, xs = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    o = np.argsort(line[:, 0])
    ly = np.interp(xs[0], line[o, 0], line[o, 1])[None, :]
    dist = np.abs(ys - ly)
    cx, rx = line[:, 0].mean(), max(np.ptp(line[:, 0]) / 2, 1.0)
    taper = np.clip(1.0 - np.abs((xs - cx) / rx) ** 4, 0.0, 1.0)
    fill = np.clip((half * taper + 0.5 - dist) / 1.5, 0.0, 1.0)[..., None] * weight * 0.9
    seam = np.clip(1.0 - dist / 1.2, 0.0, 1.0)[..., None] * weight * 0.4 * taper[..., None]
    patch = roi[by0:by1, bx0:bx1].astype(np.float32)
    patch += (lip_rgb - patch) * fill
    patch += (_INTERIOR_EDGE * 0.7 - patch) * seam
    roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def paint_fv_teeth(roi: np.ndarray, inner: np.ndarray, weight: float, *, width: float) -> None:
    """F/V: the upper teeth's edges showing above the raised lower lip (``width``: the mouth
    width in pixels)."""
    upper = inner[_INNER_UPPER_ROWS]
    bx0 = max(int(np.floor(upper[:, 0].min())), 0)
    bx1 = min(int(np.ceil(upper[:, 0].max())) + 1, roi.shape[1])
    band = max(0.05 * width, 1.5)
    by0 = max(int(np.floor(upper[:, 1].min())) - 1, 0)
    by1 = min(int(np.ceil(upper[:, 1].max() + band)) + 2, roi.shape[0])
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return
    ys, xs = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    lip_y = np.interp(xs[0], upper[:, 0], upper[:, 1])[None, :]
    below = ys - lip_y
    alpha = np.clip(below + 0.5, 0, 1) * np.clip((band - below) / 1.5, 0, 1)
    cx = upper[:, 0].mean()
    rx = max(np.ptp(upper[:, 0]) / 2, 1.0)
    side = np.clip(1.0 - np.abs((xs - cx) / (0.8 * rx)) ** 2, 0.0, 1.0)
    alpha = (alpha * side * min(weight, 1.0) * 0.85)[..., None]
    patch = roi[by0:by1, bx0:bx1].astype(np.float32)
    patch += (_TEETH * (0.8 + 0.2 * side[..., None]) - patch) * alpha
    roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def paint_interior(
    roi: np.ndarray,
    inner: np.ndarray,
    openness: float,
    *,
    width: float,
    portrait: np.ndarray,
    origin: tuple[int, int],
    lip_lift: np.ndarray,
    src_gap: float,
    src_teeth: float,
) -> None:
    """Darken the opened mouth (inside the displaced inner lips) in place.

    ``width`` is the mouth width in pixels. The rest describes the portrait's own upper teeth,
    reused where it shows them: ``portrait`` (H, W, 3 uint8), ``origin`` the ROI's top-left
    corner in it, ``lip_lift`` the upper inner lip's displacement at openness 1, ``src_gap``
    the portrait's gap between its inner lips and ``src_teeth`` (0..1) how much of its teeth
    it shows.
    """
    middles = [i - INNER_LIPS[0] for i in (INNER_LOWER_MIDDLE, INNER_UPPER_MIDDLE)]
    gap = float(np.linalg.norm(inner[middles[0]] - inner[middles[1]]))  # vertical opening
    if gap < 0.5:
        return
    pad = int(np.ceil(0.1 * width)) + 2
    bx0 = max(int(np.floor(inner[:, 0].min())) - pad, 0)
    by0 = max(int(np.floor(inner[:, 1].min())) - pad, 0)
    bx1 = min(int(np.ceil(inner[:, 0].max())) + pad, roi.shape[1])
    by1 = min(int(np.ceil(inner[:, 1].max())) + pad, roi.shape[0])
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return
    local = inner - (bx0, by0)
    shape = (by1 - by0, bx1 - bx0)
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(local * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    sigma = max(0.6, 0.025 * width)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)

    # Depth gradient: elliptical distance from the opening's centre, darkest inside.
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    cx, cy = local.mean(0)
    rx = max(np.ptp(local[:, 0]) / 2, 1.0)
    ry = max(np.ptp(local[:, 1]) / 2, 1.0)
    depth = np.clip(1.0 - np.hypot((xs - cx) / rx, (ys - cy) / ry), 0.0, 1.0)[..., None]
    color = _INTERIOR_EDGE + (_INTERIOR_DEEP - _INTERIOR_EDGE) * np.sqrt(depth)

    # Upper teeth: a band hanging from the upper inner lip once the mouth is open enough
    # to show it. They belong to the skull, so they follow the upper lip only: where
    # the portrait already shows teeth, its own (undistorted) pixels are reused,
    # otherwise a plain light band is painted; both darker toward the corners.
    show = np.clip((gap / width - 0.10) / 0.12, 0.0, 1.0)
    if show > 0:
        upper = local[_INNER_UPPER_ROWS]
        lip_y = np.interp(xs[0], upper[:, 0], upper[:, 1])[None, :]
        band = min(0.16 * width, 0.38 * gap)
        real = src_teeth
        if real > 0:
            band = min(band, 0.8 * src_gap)
        below = ys - lip_y
        teeth = np.clip(1.0 - np.abs(below - band / 2) / (band / 2 + 0.5), 0.0, 1.0)
        teeth = np.clip(teeth * 2.5, 0.0, 1.0)
        side = np.clip(1.0 - np.abs((xs - cx) / rx) ** 2, 0.0, 1.0)
        teeth_alpha = (show * teeth * (0.5 + 0.5 * side))[..., None] * 0.95
        shade = 0.8 + 0.2 * side[..., None]
        tooth_rgb = _TEETH
        if real > 0:
            # Source pixels under the upper lip, moved by the upper lip's displacement.
            off = openness * lip_lift
            sx = xs + np.float32(bx0 + origin[0] - off[0])
            sy = ys + np.float32(by0 + origin[1] - off[1])
            sampled = cv2.remap(portrait, sx, sy, cv2.INTER_LINEAR)
            tooth_rgb = real * sampled.astype(np.float32) + (1.0 - real) * _TEETH
        color = color + (tooth_rgb * shade - color) * teeth_alpha

    # The painted interior fades in with openness: a source mouth that is already
    # slightly open (teeth visible) does not jump to black at tiny openness.
    alpha = (mask * min(1.0, openness / 0.25))[..., None]
    patch = roi[by0:by1, bx0:bx1].astype(np.float32)
    patch += (color - patch) * alpha
    roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
