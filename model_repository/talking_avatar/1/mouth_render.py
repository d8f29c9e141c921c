"""Landmark-driven mouth/jaw animation of a still portrait (pure numpy/OpenCV, no Triton).

Setup (once per portrait): control points on the lips, jaw, nose and cheeks get a
displacement for the fully open pose (lower lip and chin down, upper lip slightly up,
corners slightly down and inward; nose and everything above stay put), plus zero-motion
anchors on the border of a region of interest (ROI) around mouth and jaw. For a ladder of
openness levels, a thin-plate spline through the *displaced* control points gives the
exact backward map (output pixel -> source pixel) of that pose, stored on a coarse grid.

Per frame: blend the two neighbouring levels, upsample, ``cv2.remap`` the ROI only, then
paint the mouth interior inside the displaced inner-lip polygon (dark gradient plus a hint
of upper teeth) through a feathered mask. Nothing outside the ROI is ever touched.
"""

from __future__ import annotations

import cv2
import numpy as np
from shared import (
    CHIN,
    INNER_LEFT,
    INNER_LIPS,
    INNER_LOWER_LIP,
    INNER_LOWER_MIDDLE,
    INNER_RIGHT,
    INNER_UPPER_LIP,
    INNER_UPPER_MIDDLE,
    JAW,
    LOWER_LIP,
    LOWER_LIP_MIDDLE,
    MOUTH,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    N_LANDMARKS,
    NOSE,
    NOSE_BOTTOM,
    NOSE_TIP,
    NOSE_WINGS,
    UPPER_LIP,
    UPPER_LIP_MIDDLE,
    face_axes,
)
from shared import tps_weights as _tps_weights  # the spline both mouth warps solve

_LEVELS = 17  # openness ladder 0, 1/16, ..., 1 (backward maps are not linear in openness)
_GRID_MAX = 96  # long side of the stored coarse backward map (the field is smooth)
_JAW_DROP = 0.30  # lower lip drop at openness 1, in mouth widths (0.4 read as a shout)
# How far the chin and the jaw points beside it follow the lip drop, by distance from the chin.
_CHIN_WEIGHT = {
    CHIN + side * k: weight
    for k, weight in enumerate((0.95, 0.85, 0.65, 0.4, 0.18))
    for side in (-1, 1)
}
_LIP_LIFT = 0.08  # upper lip lift in mouth widths (capped by the philtrum length)
_CORNER_IN = 0.05  # mouth corners move inward, in mouth widths
_CORNER_DROP = 0.25  # ... and down, as a fraction of the lip drop
_INTERIOR_EDGE = np.array([96.0, 36.0, 38.0])  # RGB near the lips: dark red
_INTERIOR_DEEP = np.array([22.0, 8.0, 9.0])  # RGB deep inside: brown-black
_TEETH = np.array([236.0, 232.0, 220.0])  # RGB of the upper-teeth hint
# Lip-shape basis poses; ``shapes`` in render() are their weights (viseme render weights
# without the jaw scale, see visemes.WEIGHTS).
BASES = ("spread", "round", "press", "fv")
# Lip points by role: the corners of both lip lines, the points beside them, the middles.
_CORNERS = (MOUTH_RIGHT, INNER_RIGHT, MOUTH_LEFT, INNER_LEFT)
_OUTER_BESIDE_CORNERS = (UPPER_LIP[0], UPPER_LIP[-1], LOWER_LIP[-1], LOWER_LIP[0])
_INNER_BESIDE_CORNERS = (
    INNER_UPPER_LIP[0],
    INNER_UPPER_LIP[-1],
    INNER_LOWER_LIP[-1],
    INNER_LOWER_LIP[0],
)
_UPPER_MIDDLE = UPPER_LIP[1:-1]  # the three points around the upper lip's middle
_LOWER_MIDDLE = LOWER_LIP[1:-1]
# Rows of lm[INNER_LIPS] along the upper and the lower inner lip line, corner to corner.
_INNER_UPPER_ROWS = [i - INNER_LIPS[0] for i in (INNER_RIGHT, *INNER_UPPER_LIP, INNER_LEFT)]
_INNER_LOWER_ROWS = [
    i - INNER_LIPS[0] for i in (INNER_RIGHT, *reversed(INNER_LOWER_LIP), INNER_LEFT)
]


def _kernel32(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """TPS kernel (m, n) between float32 points ``p`` and ``q``, built from coordinate
    differences (no |p|^2 + |q|^2 - 2pq cancellation): 4x faster than float64, within 0.001 px
    of it."""
    dx = p[:, 0, None] - q[None, :, 0]
    dy = p[:, 1, None] - q[None, :, 1]
    r2 = dx * dx + dy * dy
    kernel = np.log(np.maximum(r2, np.float32(1e-12)))
    kernel *= r2
    kernel *= np.float32(0.5)
    return kernel


class _GridSplines:
    """Evaluates many splines on one grid whose centres end in the same static points.

    A renderer's setup evaluates 21 splines (the openness ladder and the lip-shape bases) on
    one coarse grid; only the lip and jaw centres move between them, the anchors (fixed
    landmarks, cheeks, ROI border) do not. Their kernel columns (the log is the cost of the
    setup) are computed once: setup ~2x faster, the same numbers bit for bit.
    """

    def __init__(self, xy: np.ndarray, static: np.ndarray) -> None:
        self._xy = xy
        self._p = xy.astype(np.float32)
        self._static = _kernel32(self._p, static.astype(np.float32))
        self._static_points = static

    def eval(self, weights: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """The spline (``_tps_weights`` of ``centers``) at the grid points, (m, 2)."""
        n, k = len(centers), len(centers) - len(self._static_points)
        if not np.array_equal(centers[k:], self._static_points):
            raise ValueError("the centres must end with the static points")
        kernel = np.empty((len(self._p), n), np.float32)
        kernel[:, :k] = _kernel32(self._p, centers[:k].astype(np.float32))
        kernel[:, k:] = self._static
        return kernel @ weights[:n].astype(np.float32) + weights[n] + self._xy @ weights[n + 1 :]


class MouthRenderer:
    """Renders a portrait with its mouth opened by ``openness`` in [0, 1]."""

    def __init__(self, portrait_rgb: np.ndarray, landmarks: np.ndarray):
        """Precompute the jaw-opening warp for ``portrait_rgb`` (H, W, 3 uint8 RGB) from
        its dlib 68-point ``landmarks`` (68, 2) in pixel coordinates of this image."""
        img = np.ascontiguousarray(portrait_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError("portrait must be an HxWx3 uint8 RGB image")
        lm = np.asarray(landmarks, dtype=np.float64).reshape(N_LANDMARKS, 2)
        self._image = img
        h, w = img.shape[:2]

        # Face frame: "down" from between the eyes to the mouth, so tilted heads work.
        down, width = face_axes(lm)
        mouth = lm[MOUTH].mean(0)
        right = np.array([-down[1], down[0]])
        if np.dot(right, lm[MOUTH_LEFT] - lm[MOUTH_RIGHT]) < 0:
            right = -right
        self._width = width
        drop = _JAW_DROP * width

        # ROI: from the nose tip down to well below the chin, jaw-wide plus a margin, so
        # the field can fade to zero at its border without visible compression.
        chin_len = float(np.dot(lm[CHIN] - lm[NOSE_TIP], down))
        x0 = int(np.floor(min(lm[JAW[2:-2], 0].min(), lm[MOUTH_RIGHT, 0]) - 0.35 * width))
        x1 = int(np.ceil(max(lm[JAW[2:-2], 0].max(), lm[MOUTH_LEFT, 0]) + 0.35 * width))
        y0 = int(np.floor(lm[NOSE_TIP, 1]))
        y1 = int(np.ceil(lm[JAW[4:-4], 1].max() + max(2.2 * drop, 0.6 * chin_len)))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise ValueError("mouth region is outside the image")
        self.roi = (x0, y0, x1, y1)

        # Control points and their displacements at openness 1.
        disp = np.zeros((N_LANDMARKS, 2))
        lateral = (lm - mouth) @ right / (width / 2)  # -1 at the left corner, +1 at right
        profile = 1.0 - 0.35 * np.clip(lateral, -1, 1) ** 2  # lip centre moves the most
        for i in (*LOWER_LIP, *INNER_LOWER_LIP):
            disp[i] = down * drop * profile[i]
        for i, wgt in _CHIN_WEIGHT.items():
            disp[i] = down * drop * wgt
        philtrum = float(np.dot(lm[UPPER_LIP_MIDDLE] - lm[NOSE_BOTTOM], down))
        lift = min(_LIP_LIFT * width, 0.35 * max(philtrum, 0.0))
        for i in (*UPPER_LIP, *INNER_UPPER_LIP):
            disp[i] = -down * lift * profile[i]
        for i, side in (
            (MOUTH_RIGHT, 1.0),
            (INNER_RIGHT, 1.0),
            (MOUTH_LEFT, -1.0),
            (INNER_LEFT, -1.0),
        ):
            disp[i] = down * _CORNER_DROP * drop + right * side * _CORNER_IN * width
        moving = [*JAW[3:-3], *MOUTH]
        fixed = [*JAW[:3], *JAW[-3:], *NOSE]
        # Cheeks between nose wings and jaw stay put (keeps the smile folds in place).
        (wing_r, wing_l), (jaw_r, jaw_l) = NOSE_WINGS, (JAW[3], JAW[-4])
        cheeks = np.array([(lm[wing_r] + lm[jaw_r]) / 2, (lm[wing_l] + lm[jaw_l]) / 2])
        border = self._border_anchors(x0, y0, x1, y1, step=max(width / 4, 4.0))
        src = np.vstack([lm[moving], lm[fixed], cheeks, border])
        move = np.vstack([disp[moving], np.zeros((len(src) - len(moving), 2))])
        self._inner_src = lm[INNER_LIPS]
        self._lip_lift_vec = disp[INNER_UPPER_MIDDLE].copy()
        # How much the portrait itself shows its upper teeth (an already parted mouth).
        self._src_gap = float(np.dot(lm[INNER_LOWER_MIDDLE] - lm[INNER_UPPER_MIDDLE], down))
        self._src_teeth = float(np.clip((self._src_gap / width - 0.06) / 0.06, 0.0, 1.0))
        self._inner_disp = disp[INNER_LIPS]
        # Lip colour: median of the lower lip's middle (between its inner and outer edge).
        c = (lm[INNER_LOWER_MIDDLE] + lm[LOWER_LIP_MIDDLE]) / 2
        r = max(1, int(0.04 * width))
        lip = img[int(c[1]) - r : int(c[1]) + r + 1, int(c[0]) - 2 * r : int(c[0]) + 2 * r + 1]
        self._lip_rgb = np.median(lip.reshape(-1, 3), 0) if lip.size else np.array([150.0, 80, 80])

        # Backward maps per openness level on a coarse grid (ROI-local source coordinates).
        rw, rh = x1 - x0, y1 - y0
        scale = min(1.0, _GRID_MAX / max(rw, rh))
        gw, gh = max(2, round(rw * scale)), max(2, round(rh * scale))
        # Coarse samples at the pixel centres cv2.resize(INTER_LINEAR) assumes, so the
        # upsampled field is exact at them.
        gx = x0 - 0.5 + (np.arange(gw) + 0.5) * rw / gw
        gy = y0 - 0.5 + (np.arange(gh) + 0.5) * rh / gh
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        splines = _GridSplines(grid, src[len(moving) :])  # only the first len(moving) move
        self._levels = np.empty((_LEVELS, gh, gw, 2), np.float32)
        for k in range(_LEVELS):
            a = k / (_LEVELS - 1)
            if a == 0:
                self._levels[k] = 0.0
                continue
            dst = src + a * move
            wts = _tps_weights(dst, -a * move)
            self._levels[k] = splines.eval(wts, dst).reshape(gh, gw, 2)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self._base_x, self._base_y = xs, ys

        # Lip-shape basis poses (viseme rendering): forward displacements of the lip points
        # at weight 1; each gets its own backward field (TPS through the same anchors), and
        # weights blend them linearly with the openness ladder (small displacements).
        self._basis_fields = np.zeros((len(BASES), gh, gw, 2), np.float32)
        self._basis_inner = np.zeros((len(BASES), 8, 2))
        for b, name in enumerate(BASES):
            bdisp = self._basis_disp(name, lm, down, right, width, mouth)
            bmove = np.vstack([bdisp[moving], np.zeros((len(src) - len(moving), 2))])
            dst = src + bmove
            wts = _tps_weights(dst, -bmove)
            self._basis_fields[b] = splines.eval(wts, dst).reshape(gh, gw, 2)
            self._basis_inner[b] = bdisp[INNER_LIPS]

    def _basis_disp(self, name, lm, down, right, width, mouth) -> np.ndarray:
        """Forward displacement (68, 2) of the lip landmarks for one basis pose."""
        d = np.zeros((N_LANDMARKS, 2))
        side = np.sign((lm - mouth) @ right)  # -1 left half, +1 right half
        gap = max(self._src_gap, 0.0)
        if name == "spread":  # EE: corners out and a little up, lips thinner
            for i in _CORNERS:
                d[i] = right * side[i] * 0.09 * width - down * 0.02 * width
            for i in (*_OUTER_BESIDE_CORNERS, *_INNER_BESIDE_CORNERS):
                d[i] = right * side[i] * 0.05 * width
            for i in _UPPER_MIDDLE:
                d[i] = down * 0.015 * width
            for i in _LOWER_MIDDLE:
                d[i] = -down * 0.015 * width
        elif name == "round":  # O/U/W: corners in, lips pushed out (fuller, shorter mouth)
            for i in _CORNERS:
                d[i] = -right * side[i] * 0.16 * width
            for i in _OUTER_BESIDE_CORNERS:
                d[i] = -right * side[i] * 0.09 * width
            for i in _INNER_BESIDE_CORNERS:
                d[i] = -right * side[i] * 0.10 * width
            for i in _UPPER_MIDDLE:
                d[i] = -down * 0.035 * width - right * side[i] * 0.03 * width
            for i in _LOWER_MIDDLE:
                d[i] = down * 0.035 * width - right * side[i] * 0.03 * width
        elif name == "press":  # M/B/P: lips meet and thin out (a seam is painted on top)
            for i in _UPPER_MIDDLE:
                d[i] = down * (0.02 * width + 0.5 * gap)
            for i in INNER_UPPER_LIP:
                d[i] = down * 0.5 * gap
            for i in _LOWER_MIDDLE:
                d[i] = -down * (0.025 * width + 0.5 * gap)
            for i in INNER_LOWER_LIP:
                d[i] = -down * 0.5 * gap
            for i in (MOUTH_RIGHT, MOUTH_LEFT):
                d[i] = -right * side[i] * 0.02 * width
        elif name == "fv":  # F/V: lower lip up under the upper teeth
            for i in _LOWER_MIDDLE:
                d[i] = -down * (0.04 * width + 0.5 * gap)
            for i in INNER_LOWER_LIP:
                d[i] = -down * (0.03 * width + 0.5 * gap)
        return d

    @staticmethod
    def _border_anchors(x0: int, y0: int, x1: int, y1: int, step: float) -> np.ndarray:
        nx = max(2, int(np.ceil((x1 - x0) / step)) + 1)
        ny = max(2, int(np.ceil((y1 - y0) / step)) + 1)
        xs = np.linspace(x0, x1 - 1, nx)
        ys = np.linspace(y0, y1 - 1, ny)
        pts = [(x, y0) for x in xs] + [(x, y1 - 1) for x in xs]
        pts += [(x0, y) for y in ys[1:-1]] + [(x1 - 1, y) for y in ys[1:-1]]
        return np.array(pts, dtype=np.float64)

    def render(self, openness: float, shapes=None) -> np.ndarray:
        """Return a new (H, W, 3) uint8 frame with the mouth opened by ``openness``.

        ``openness`` is clipped to [0, 1]; ``shapes`` are optional weights (0..~1.5) of the
        basis poses ``BASES`` (spread, round, press, fv). 0 openness and no shape weights
        return an exact copy of the portrait; only pixels inside ``roi`` ever differ from it.
        """
        a = float(np.clip(openness, 0.0, 1.0)) if np.isfinite(openness) else 0.0
        out = self._image.copy()
        w = np.zeros(len(BASES))
        if shapes is not None:
            w = np.nan_to_num(np.clip(np.asarray(shapes, np.float64).ravel()[: len(BASES)], 0, 1.5))
        if a <= 0.0 and not np.any(w > 1e-3):
            return out
        x0, y0, x1, y1 = self.roi
        pos = a * (_LEVELS - 1)
        k = min(int(pos), _LEVELS - 2)
        f = pos - k
        coarse = (1.0 - f) * self._levels[k] + f * self._levels[k + 1]
        for b in np.nonzero(w > 1e-3)[0]:
            coarse = coarse + np.float32(w[b]) * self._basis_fields[b]
        field = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        map_x = self._base_x + field[..., 0]
        map_y = self._base_y + field[..., 1]
        roi = cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        inner_disp = a * self._inner_disp + np.tensordot(w, self._basis_inner, 1)
        if a > 0.0:
            self._paint_interior(roi, a, inner_disp)
        if w[3] > 1e-3:
            self._paint_fv_teeth(roi, w[3], inner_disp)
        if w[2] > 1e-3:
            self._paint_seam(roi, min(w[2], 1.0), inner_disp)
        out[y0:y1, x0:x1] = roi
        return out

    def _paint_seam(self, roi: np.ndarray, weight: float, inner_disp: np.ndarray) -> None:
        """Pressed lips: lip colour over what is left between them, and a thin dark seam."""
        x0, y0 = self.roi[:2]
        inner = self._inner_src + inner_disp - (x0, y0)
        line = (inner[_INNER_UPPER_ROWS] + inner[_INNER_LOWER_ROWS]) / 2  # between the lips
        half = max(0.5 * self._src_gap, 0.0) + 0.03 * self._width
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
        patch += (self._lip_rgb - patch) * fill
        patch += (_INTERIOR_EDGE * 0.7 - patch) * seam
        roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    def _paint_fv_teeth(self, roi: np.ndarray, weight: float, inner_disp: np.ndarray) -> None:
        """F/V: the upper teeth's edges showing above the raised lower lip."""
        x0, y0 = self.roi[:2]
        inner = self._inner_src + inner_disp - (x0, y0)
        upper = inner[_INNER_UPPER_ROWS]
        bx0 = max(int(np.floor(upper[:, 0].min())), 0)
        bx1 = min(int(np.ceil(upper[:, 0].max())) + 1, roi.shape[1])
        band = max(0.05 * self._width, 1.5)
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

    def _paint_interior(self, roi: np.ndarray, a: float, inner_disp: np.ndarray) -> None:
        """Darken the opened mouth (inside the displaced inner lips) in place."""
        x0, y0 = self.roi[:2]
        inner = self._inner_src + inner_disp - (x0, y0)  # ROI-local, rows of INNER_LIPS
        middles = [i - INNER_LIPS[0] for i in (INNER_LOWER_MIDDLE, INNER_UPPER_MIDDLE)]
        gap = float(np.linalg.norm(inner[middles[0]] - inner[middles[1]]))  # vertical opening
        if gap < 0.5:
            return
        pad = int(np.ceil(0.1 * self._width)) + 2
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
        sigma = max(0.6, 0.025 * self._width)
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
        show = np.clip((gap / self._width - 0.10) / 0.12, 0.0, 1.0)
        if show > 0:
            upper = local[_INNER_UPPER_ROWS]
            lip_y = np.interp(xs[0], upper[:, 0], upper[:, 1])[None, :]
            band = min(0.16 * self._width, 0.38 * gap)
            real = self._src_teeth
            if real > 0:
                band = min(band, 0.8 * self._src_gap)
            below = ys - lip_y
            teeth = np.clip(1.0 - np.abs(below - band / 2) / (band / 2 + 0.5), 0.0, 1.0)
            teeth = np.clip(teeth * 2.5, 0.0, 1.0)
            side = np.clip(1.0 - np.abs((xs - cx) / rx) ** 2, 0.0, 1.0)
            teeth_alpha = (show * teeth * (0.5 + 0.5 * side))[..., None] * 0.95
            shade = 0.8 + 0.2 * side[..., None]
            tooth_rgb = _TEETH
            if real > 0:
                # Source pixels under the upper lip, moved by the upper lip's displacement.
                off = a * self._lip_lift_vec
                sx = xs + np.float32(bx0 + self.roi[0] - off[0])
                sy = ys + np.float32(by0 + self.roi[1] - off[1])
                sampled = cv2.remap(self._image, sx, sy, cv2.INTER_LINEAR)
                tooth_rgb = real * sampled.astype(np.float32) + (1.0 - real) * _TEETH
            color = color + (tooth_rgb * shade - color) * teeth_alpha

        # The painted interior fades in with openness: a source mouth that is already
        # slightly open (teeth visible) does not jump to black at tiny openness.
        alpha = (mask * min(1.0, a / 0.25))[..., None]
        patch = roi[by0:by1, bx0:bx1].astype(np.float32)
        patch += (color - patch) * alpha
        roi[by0:by1, bx0:bx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
