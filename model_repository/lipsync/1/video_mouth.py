"""Re-animate the mouth of one video frame to a target opening (numpy/OpenCV, no Triton).

The source frame already has a mouth in some pose. We measure its inner-lip gap along the
face's "down" direction, and move the lower lip and the jaw by the difference to the target
gap: down to open further, up to close a mouth that was open in the source. A thin-plate
spline through the moved control points (and fixed points on the nose, upper lip, outer jaw
and the border of a region around mouth and jaw) gives the backward map, evaluated on a coarse
grid and upsampled; only that region is remapped, so every other pixel of the frame is kept.
Where the mouth opens wider than in the source, its interior is darkened through a feathered
mask.
"""

from __future__ import annotations

import cv2
import numpy as np
from shared import (
    CHIN,
    INNER_LEFT,
    INNER_LIPS,
    INNER_LOWER_LIP,
    INNER_RIGHT,
    INNER_UPPER_LIP,
    JAW,
    LOWER_LIP,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    N_LANDMARKS,
    NOSE,
    NOSE_BRIDGE,
    NOSE_WINGS,
    OUTER_LIPS,
    UPPER_LIP,
    face_axes,
    tps_kernel,
    tps_weights,
)

#: inner-lip gap at openness 1, in mouth widths (as the talking avatar's jaw drop)
OPEN_GAP = 0.30
#: how far lower-lip and jaw points follow the lower-lip motion
_FOLLOW = {
    **dict.fromkeys(INNER_LOWER_LIP, 1.0),
    **dict.fromkeys(LOWER_LIP[1:-1], 0.97),
    **dict.fromkeys((LOWER_LIP[0], LOWER_LIP[-1]), 0.75),
    CHIN: 0.9,
    **dict.fromkeys((CHIN - 1, CHIN + 1), 0.8),
    **dict.fromkeys((CHIN - 2, CHIN + 2), 0.6),
    **dict.fromkeys((CHIN - 3, CHIN + 3), 0.35),
    **dict.fromkeys((MOUTH_RIGHT, MOUTH_LEFT), 0.25),
    **dict.fromkeys((INNER_RIGHT, INNER_LEFT), 0.3),
}
#: points that stay where they are: outer jaw, nose, upper lip
_FIXED = [*JAW[:4], *JAW[-4:], *NOSE, *UPPER_LIP, *INNER_UPPER_LIP]
_GRID_STEP = 6  # px between samples of the backward map (the field is smooth)
_INTERIOR = np.array([40.0, 14.0, 16.0])  # RGB of the darkened mouth interior


def inner_gap(lm: np.ndarray) -> float:
    """Opening between the inner lips along "down", in pixels (>= 0)."""
    down, _ = face_axes(lm)
    pairs = zip(INNER_UPPER_LIP, reversed(INNER_LOWER_LIP), strict=True)  # one above the other
    return max(0.0, float(np.mean([np.dot(lm[b] - lm[a], down) for a, b in pairs])))


def reanimate(frame: np.ndarray, landmarks: np.ndarray, openness: float) -> np.ndarray:
    """``frame`` (H, W, 3 uint8 RGB) with its mouth opened to ``openness`` in [0, 1]."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(N_LANDMARKS, 2)
    down, width = face_axes(lm)
    target = float(np.clip(openness, 0.0, 1.0)) * OPEN_GAP * width
    current = inner_gap(lm)
    delta = float(np.clip(target - current, -current, 0.45 * width))
    if abs(delta) < 0.3:  # sub-pixel: nothing visible to do
        return frame

    h, w = frame.shape[:2]
    jaw = lm[[*JAW[2:-2], *NOSE_BRIDGE[2:], *NOSE_WINGS]]
    x0, y0 = np.floor(jaw.min(0) - 0.1 * width).astype(int)
    x1, y1 = np.ceil(jaw.max(0) + 0.35 * width + max(delta, 0) * np.abs(down)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return frame

    moving = np.array(list(_FOLLOW))
    src = np.concatenate([lm[moving], lm[_FIXED], _border(x0, y0, x1, y1, width / 3)])
    dst = src.copy()
    dst[: len(moving)] += np.outer([_FOLLOW[i] for i in moving], down * delta)
    # Backward map: for each output pixel, where to sample the source.
    weights = tps_weights(dst, src - dst)
    gx = np.arange(x0, x1 + _GRID_STEP, _GRID_STEP, dtype=np.float64)
    gy = np.arange(y0, y1 + _GRID_STEP, _GRID_STEP, dtype=np.float64)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    n = len(dst)
    offset = tps_kernel(grid, dst) @ weights[:n] + weights[n] + grid @ weights[n + 1 :]
    coarse = (grid + offset).reshape(len(gy), len(gx), 2).astype(np.float32)
    # Upsample the coarse map to the region's pixels (grid node k sits at x0 + k * step).
    fine = cv2.resize(
        coarse,
        ((len(gx) - 1) * _GRID_STEP + 1, (len(gy) - 1) * _GRID_STEP + 1),
        interpolation=cv2.INTER_LINEAR,
    )[: y1 - y0, : x1 - x0]
    out = frame.copy()
    warped = cv2.remap(
        frame, fine[..., 0], fine[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    ).astype(np.float32)
    # Between the border anchors the spline is only nearly zero: fade the warp out towards the
    # region's edge so no seam shows on strong edges (a collar, a jaw line).
    ramp = _edge_ramp(y1 - y0, x1 - x0, max(4.0, width / 6))[..., None]
    original = frame[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (original + ramp * (warped - original) + 0.5).astype(np.uint8)
    if delta > 0:
        _paint_interior(
            out,
            lm,
            down * delta,
            (x0, y0, x1, y1),
            _INTERIOR,
            float(np.clip(delta / width * 4.0, 0.0, 0.85)),
        )
    elif current > 0.04 * width:
        # Closing a mouth that is open in the source: what is left of the gap (teeth, tongue)
        # is covered with the lips' own colour.
        _paint_interior(
            out,
            lm,
            down * delta,
            (x0, y0, x1, y1),
            _lip_colour(frame, lm),
            float(np.clip(-delta / current, 0.0, 0.9)),
        )
    return out


def _lip_colour(frame: np.ndarray, lm: np.ndarray) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[OUTER_LIPS]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(lm[INNER_LIPS]).astype(np.int32)], 0)
    pixels = frame[mask > 0]
    return pixels.mean(0) if len(pixels) else np.array([150.0, 80.0, 80.0])


def _edge_ramp(h: int, w: int, size: float) -> np.ndarray:
    """0 at the edge of an h x w region, rising to 1 at ``size`` pixels inside."""
    y = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None]
    x = np.minimum(np.arange(w), np.arange(w)[::-1])[None, :]
    return np.clip(np.minimum(x, y) / size, 0.0, 1.0).astype(np.float32)


def _border(x0: int, y0: int, x1: int, y1: int, step: float) -> np.ndarray:
    xs = np.linspace(x0, x1 - 1, max(2, int((x1 - x0) / step) + 1))
    ys = np.linspace(y0, y1 - 1, max(2, int((y1 - y0) / step) + 1))
    top = np.stack([xs, np.full_like(xs, y0)], 1)
    bottom = np.stack([xs, np.full_like(xs, y1 - 1)], 1)
    left = np.stack([np.full_like(ys, x0), ys], 1)
    right = np.stack([np.full_like(ys, x1 - 1), ys], 1)
    return np.concatenate([top, bottom, left, right])


def _paint_interior(out, lm, shift, roi, colour, amount: float) -> None:
    """Blend ``colour`` into the (moved) inner-lip polygon through a feathered mask."""
    inner = lm[INNER_LIPS]
    for k, i in enumerate(INNER_LIPS):
        if i in _FOLLOW:
            inner[k] += shift * _FOLLOW[i]
    x0, y0, x1, y1 = roi
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    mouth_w = float(np.linalg.norm(lm[MOUTH_LEFT] - lm[MOUTH_RIGHT]))
    polygon = [np.round(inner - [x0, y0]).astype(np.int32)]
    cv2.fillPoly(mask, polygon, 1.0)
    # A closed mouth's polygon is nearly a line: give it some body so the seam is covered.
    cv2.polylines(mask, polygon, True, 1.0, thickness=max(1, round(mouth_w / 25)))
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.8, mouth_w / 40))
    alpha = (mask * amount)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (region * (1 - alpha) + colour * alpha).astype(np.uint8)
