"""Painting inside the warped mouth (pure numpy/OpenCV): the mouth interior (the portrait's own
teeth, layered, or a dark interior with a hint of upper teeth), the upper teeth's edges for
F/V, and the seam of pressed lips (M/B/P).

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
_TYPICAL_SKIN = np.array([205.0, 160.0, 135.0])  # RGB of a lit face, for _in_tone
# Rows of lm[INNER_LIPS] along the upper and the lower inner lip line, corner to corner.
_INNER_UPPER_ROWS = [i - INNER_LIPS[0] for i in (INNER_RIGHT, *INNER_UPPER_LIP, INNER_LEFT)]
_INNER_LOWER_ROWS = [
    i - INNER_LIPS[0] for i in (INNER_RIGHT, *reversed(INNER_LOWER_LIP), INNER_LEFT)
]


def close_lips(roi: np.ndarray, inner: np.ndarray, weight: float, *, width: float) -> None:
    """Pressed lips (M/B/P): the lower lip slides up over the gap by ``weight`` of it.

    Below the lower inner lip, the picture is sampled from further down by the gap (fading out
    towards the chin over at least twice the shift, so the map stays one-to-one); the gap's
    content (teeth, interior) is covered by the lower lip from below, as lips close over
    teeth, and the upper lip stays in front. A smooth warp cannot close a gap without
    collapsing it; this map is cut along the lower lip's new edge instead."""
    upper = inner[_INNER_UPPER_ROWS]
    lower = inner[_INNER_LOWER_ROWS]
    bx0 = max(int(np.floor(min(upper[:, 0].min(), lower[:, 0].min()))), 0)
    bx1 = min(int(np.ceil(max(upper[:, 0].max(), lower[:, 0].max()))) + 1, roi.shape[1])
    if bx1 - bx0 < 2:
        return
    xs = np.arange(bx0, bx1, dtype=np.float32)
    top = np.interp(xs, *upper[np.argsort(upper[:, 0])].T)
    bottom = np.interp(xs, *lower[np.argsort(lower[:, 0])].T)
    gap = np.maximum(bottom - top, 0.0)
    # a little past the upper edge: the inner-lip points sit about a pixel inside the lips
    shift = weight * (gap + np.minimum(0.02 * width, 0.25 * gap) * (gap > 1.0))
    if shift.max() < 0.3:
        return
    fade_len = max(2.5 * float(shift.max()), 0.4 * width)
    by0 = max(int(np.floor(top.min())) - 1, 0)
    by1 = min(int(np.ceil(bottom.max() + fade_len)) + 2, roi.shape[0])
    if by1 - by0 < 2:
        return
    ys = np.arange(by0, by1, dtype=np.float32)[:, None]
    edge = (bottom - shift)[None, :]  # the lower lip's new upper edge
    fade = np.clip(1.0 - (ys - bottom[None, :]) / fade_len, 0.0, 1.0)
    fade = fade * fade * (3 - 2 * fade)  # smooth, flat at both ends
    moved = np.where(ys >= bottom[None, :], fade, 1.0) * shift[None, :]
    src_y = ys + moved * np.clip(ys - edge + 0.5, 0.0, 1.0)
    src_x = np.broadcast_to(xs[None, :], src_y.shape)
    patch = roi[by0:by1, bx0:bx1]
    warped = cv2.remap(
        roi,
        np.ascontiguousarray(src_x, np.float32),
        np.ascontiguousarray(src_y, np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    patch[:] = warped


def paint_seam(roi: np.ndarray, inner: np.ndarray, weight: float, *, width: float) -> None:
    """Pressed lips: a thin soft shadow where the lips meet (``width``: the mouth width)."""
    line = (inner[_INNER_UPPER_ROWS] + inner[_INNER_LOWER_ROWS]) / 2  # between the lips
    upper = inner[_INNER_UPPER_ROWS]
    bx0 = max(int(np.floor(line[:, 0].min())) - 1, 0)
    bx1 = min(int(np.ceil(line[:, 0].max())) + 2, roi.shape[1])
    by0 = max(int(np.floor(upper[:, 1].min())) - 3, 0)
    by1 = min(int(np.ceil(upper[:, 1].max())) + 4, roi.shape[0])
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return
    ys, xs = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    o = np.argsort(upper[:, 0])
    ly = np.interp(xs[0], upper[o, 0], upper[o, 1])[None, :]  # the closed lips meet here
    dist = np.abs(ys - ly)
    cx, rx = line[:, 0].mean(), max(np.ptp(line[:, 0]) / 2, 1.0)
    taper = np.clip(1.0 - np.abs((xs - cx) / rx) ** 4, 0.0, 1.0)
    seam = np.clip(1.0 - dist / max(0.8, 0.015 * width), 0.0, 1.0) * weight * 0.35 * taper
    patch = roi[by0:by1, bx0:bx1].astype(np.float32)
    patch += (_INTERIOR_EDGE * 0.7 - patch) * seam[..., None]
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
    src_inner: np.ndarray,
    jaw: np.ndarray,
    src_gap: float,
    src_teeth: float,
    skin: np.ndarray,
    outline: np.ndarray | None = None,
) -> None:
    """Fill the mouth opening (inside the displaced inner lips ``inner``) in place.

    ``width`` is the mouth width in pixels. A portrait that shows its teeth (``src_teeth`` >
    0, ``src_gap`` its gap between the inner lips) fills the opening with its own mouth,
    layered as a real one: the upper half of its gap (upper teeth) stays where it is, with
    the skull; the lower half (lower teeth) moves with the jaw (``jaw``: the displacement of
    the lower inner lip, pixels); the dark interior shows between them. Neither layer is
    resampled, so teeth are never squeezed or stretched, and the lips, warped around them,
    cover what they would cover (an O shows the middle teeth, the corners hide the rest).
    ``src_inner`` are the portrait's own inner-lip points (ROI-local), ``portrait`` the
    picture and ``origin`` the ROI's corner in it. A portrait with a closed mouth gets the
    dark interior with a painted hint of upper teeth once the mouth is open enough, both in the
    tone of ``skin`` (the face's RGB): grey in a black-and-white photo, dimmer in a dim one.
    ``outline`` (ROI-local, cyclic, its first 11 points the upper edge) is the opening drawn
    from the face mesh's dense inner lips; without it, a round curve through ``inner``.
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
    # The 8 inner-lip points as a polygon give an angular opening (a triangle in an O); a
    # closed Catmull-Rom curve through them gives the lips' round inner edge.
    if outline is None:
        outline = _round_outline(local, _OUTLINE_STEPS)
        upper_edge = outline[: 4 * _OUTLINE_STEPS + 1]
    else:
        outline = outline - (bx0, by0)
        upper_edge = outline[:11]
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.012 * width))

    # Depth gradient: elliptical distance from the opening's centre, darkest inside.
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    cx, cy = local.mean(0)
    rx = max(np.ptp(local[:, 0]) / 2, 1.0)
    ry = max(np.ptp(local[:, 1]) / 2, 1.0)
    depth = np.clip(1.0 - np.hypot((xs - cx) / rx, (ys - cy) / ry), 0.0, 1.0)[..., None]
    color = _INTERIOR_EDGE + (_INTERIOR_DEEP - _INTERIOR_EDGE) * np.sqrt(depth)

    color = _in_tone(color, skin)
    if src_teeth > 0:
        color = _own_mouth(color, xs, ys, (bx0, by0), portrait, origin, src_inner, jaw)
        alpha = mask[..., None]
    else:
        teeth = _in_tone(_teeth_rgb(skin), skin)
        color = _painted_teeth(color, xs, ys, local, upper_edge, gap, width, teeth)
        # The painted interior fades in with openness: no jump to black at tiny openings.
        alpha = (mask * min(1.0, openness / 0.25))[..., None]
    patch = roi[by0:by1, bx0:bx1].astype(np.float32)
    patch += (color - patch) * alpha
    roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


_OUTLINE_STEPS = 6  # samples per segment of the round inner-lip outline


def _round_outline(points: np.ndarray, steps: int) -> np.ndarray:
    """A closed Catmull-Rom curve through ``points`` (n, 2), ``steps`` samples per segment."""
    p = np.asarray(points, np.float64)
    p0, p1, p2, p3 = np.roll(p, 1, 0), p, np.roll(p, -1, 0), np.roll(p, -2, 0)
    t = np.linspace(0.0, 1.0, steps, endpoint=False)[:, None, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return curve.transpose(1, 0, 2).reshape(-1, 2)


def _own_mouth(color, xs, ys, corner, portrait, origin, src_inner, jaw) -> np.ndarray:
    """The portrait's own mouth interior: upper half in place, lower half moved by ``jaw``,
    ``color`` (the dark interior) in the gap that opens between them."""
    bx0, by0 = corner
    ox, oy = origin[0] + bx0, origin[1] + by0  # patch pixel -> portrait pixel
    upper = src_inner[_INNER_UPPER_ROWS] - (bx0, by0)
    lower = src_inner[_INNER_LOWER_ROWS] - (bx0, by0)
    column = xs[0]
    top = np.interp(column, *upper[np.argsort(upper[:, 0])].T)[None, :]
    bottom = np.interp(column - jaw[0], *lower[np.argsort(lower[:, 0])].T)[None, :]
    split = (top + np.interp(column, *lower[np.argsort(lower[:, 0])].T)[None, :]) / 2
    # Upper layer: rows from the upper lip to the split, sampled where they are (rows the
    # lifted lip uncovers above the source's teeth repeat their top row).
    up_y = np.clip(ys, top + 1.0, None)
    upper_rgb = _sample(portrait, xs + ox, up_y + oy)
    # Lower layer: rows from the split down, moved by the jaw.
    low_y = np.clip(ys - jaw[1], None, bottom - 1.0)
    lower_rgb = _sample(portrait, xs - jaw[0] + ox, low_y + oy)
    in_upper = np.clip(split - ys + 0.5, 0.0, 1.0)[..., None]
    in_lower = np.clip(ys - (split + jaw[1]) + 0.5, 0.0, 1.0)[..., None]
    gap = 1.0 - in_upper - in_lower
    return upper_rgb * in_upper + lower_rgb * in_lower + color * np.clip(gap, 0.0, 1.0)


def _sample(portrait: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(
        portrait, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR
    ).astype(np.float32)


def _painted_teeth(
    color, xs, ys, local, upper_edge, gap: float, width: float, teeth_rgb
) -> np.ndarray:
    """A light band of upper teeth hanging from the upper inner lip once the mouth is open
    enough to show it (a portrait with a closed mouth has no teeth of its own to show)."""
    show = np.clip((gap / width - 0.10) / 0.12, 0.0, 1.0)
    if show <= 0:
        return color
    cx = local[:, 0].mean()
    rx = max(np.ptp(local[:, 0]) / 2, 1.0)
    # the teeth hang from the lip's inner edge as drawn (``upper_edge``, the outline's upper
    # half), not from the polyline through its five points (a chevron)
    order = np.argsort(upper_edge[:, 0])
    lip_y = np.interp(xs[0], upper_edge[order, 0], upper_edge[order, 1])[None, :]
    band = min(0.16 * width, 0.38 * gap)
    below = ys - lip_y
    teeth = np.clip(1.0 - np.abs(below - band / 2) / (band / 2 + 0.5), 0.0, 1.0)
    teeth = np.clip(teeth * 2.5, 0.0, 1.0)
    side = np.clip(1.0 - np.abs((xs - cx) / rx) ** 2, 0.0, 1.0)
    teeth_alpha = (show * teeth * (0.5 + 0.5 * side))[..., None] * 0.95
    shade = 0.8 + 0.2 * side[..., None]
    return color + (teeth_rgb * shade - color) * teeth_alpha


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _in_tone(rgb: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Painted colours as colourful as the portrait: a black-and-white photo gets a grey mouth
    (its skin's chroma against a typical skin's, 0 for grey, capped at 1)."""
    chroma = float(np.ptp(skin)) / float(np.ptp(_TYPICAL_SKIN))
    amount = np.float32(np.clip(chroma, 0.0, 1.0))
    grey = _luma(rgb)[..., None]
    return grey + amount * (rgb - grey)


def _teeth_rgb(skin: np.ndarray) -> np.ndarray:
    """Painted teeth lit like the face: as bright as _TEETH under a well-lit face, darker in a
    dim photo (teeth never glow brighter than the light allows)."""
    return _TEETH * np.float32(np.clip(float(_luma(skin)) / 175.0, 0.45, 1.0))
