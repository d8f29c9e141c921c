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

_LEVELS = 17  # openness ladder 0, 1/16, ..., 1 (backward maps are not linear in openness)
_GRID_MAX = 96  # long side of the stored coarse backward map (the field is smooth)
_JAW_DROP = 0.30  # lower lip drop at openness 1, in mouth widths (0.4 read as a shout)
_CHIN_WEIGHT = {8: 0.95, 7: 0.85, 9: 0.85, 6: 0.65, 10: 0.65, 5: 0.4, 11: 0.4, 4: 0.18, 12: 0.18}
_LIP_LIFT = 0.08  # upper lip lift in mouth widths (capped by the philtrum length)
_CORNER_IN = 0.05  # mouth corners move inward, in mouth widths
_CORNER_DROP = 0.25  # ... and down, as a fraction of the lip drop
_INTERIOR_EDGE = np.array([96.0, 36.0, 38.0])  # RGB near the lips: dark red
_INTERIOR_DEEP = np.array([22.0, 8.0, 9.0])  # RGB deep inside: brown-black
_TEETH = np.array([236.0, 232.0, 220.0])  # RGB of the upper-teeth hint


def _tps_weights(points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Thin-plate spline coefficients (n + 3, 2) interpolating ``values`` at ``points``."""
    n = len(points)
    k = _tps_kernel(points, points)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = k + 1e-6 * np.eye(n)  # tiny regulariser: near-duplicate points are fine
    a[:n, n] = 1.0
    a[:n, n + 1 :] = points
    a[n, :n] = 1.0
    a[n + 1 :, :n] = points.T
    b = np.zeros((n + 3, 2))
    b[:n] = values
    return np.linalg.solve(a, b)


def _tps_kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    r2 = np.maximum((p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2.0 * p @ q.T, 0.0)
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-12))


def _tps_eval(weights: np.ndarray, centers: np.ndarray, xy: np.ndarray) -> np.ndarray:
    n = len(centers)
    return _tps_kernel(xy, centers) @ weights[:n] + weights[n] + xy @ weights[n + 1 :]


class MouthRenderer:
    """Renders a portrait with its mouth opened by ``openness`` in [0, 1]."""

    def __init__(self, portrait_rgb: np.ndarray, landmarks: np.ndarray):
        """Precompute the jaw-opening warp for ``portrait_rgb`` (H, W, 3 uint8 RGB) from
        its dlib 68-point ``landmarks`` (68, 2) in pixel coordinates of this image."""
        img = np.ascontiguousarray(portrait_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError("portrait must be an HxWx3 uint8 RGB image")
        lm = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
        self._image = img
        h, w = img.shape[:2]

        # Face frame: "down" from between the eyes to the mouth, so tilted heads work.
        eyes = lm[36:48].mean(0)
        mouth = lm[48:68].mean(0)
        down = (mouth - eyes) / max(np.linalg.norm(mouth - eyes), 1e-6)
        right = np.array([-down[1], down[0]])
        if np.dot(right, lm[54] - lm[48]) < 0:
            right = -right
        width = max(float(np.linalg.norm(lm[54] - lm[48])), 4.0)
        self._width = width
        drop = _JAW_DROP * width

        # ROI: from the nose tip down to well below the chin, jaw-wide plus a margin, so
        # the field can fade to zero at its border without visible compression.
        chin_len = float(np.dot(lm[8] - lm[30], down))
        x0 = int(np.floor(min(lm[2:15, 0].min(), lm[48, 0]) - 0.35 * width))
        x1 = int(np.ceil(max(lm[2:15, 0].max(), lm[54, 0]) + 0.35 * width))
        y0 = int(np.floor(lm[30, 1]))
        y1 = int(np.ceil(lm[4:13, 1].max() + max(2.2 * drop, 0.6 * chin_len)))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise ValueError("mouth region is outside the image")
        self.roi = (x0, y0, x1, y1)

        # Control points and their displacements at openness 1.
        disp = np.zeros((68, 2))
        lateral = (lm - mouth) @ right / (width / 2)  # -1 at the left corner, +1 at right
        profile = 1.0 - 0.35 * np.clip(lateral, -1, 1) ** 2  # lip centre moves the most
        for i in (55, 56, 57, 58, 59, 65, 66, 67):
            disp[i] = down * drop * profile[i]
        for i, wgt in _CHIN_WEIGHT.items():
            disp[i] = down * drop * wgt
        philtrum = float(np.dot(lm[51] - lm[33], down))
        lift = min(_LIP_LIFT * width, 0.35 * max(philtrum, 0.0))
        for i in (49, 50, 51, 52, 53, 61, 62, 63):
            disp[i] = -down * lift * profile[i]
        for i, side in ((48, 1.0), (60, 1.0), (54, -1.0), (64, -1.0)):
            disp[i] = down * _CORNER_DROP * drop + right * side * _CORNER_IN * width
        moving = list(range(3, 14)) + list(range(48, 68))
        fixed = list(range(0, 3)) + list(range(14, 17)) + list(range(27, 36))
        # Cheeks between nose wings and jaw stay put (keeps the smile folds in place).
        cheeks = np.array([(lm[31] + lm[3]) / 2, (lm[35] + lm[13]) / 2])
        border = self._border_anchors(x0, y0, x1, y1, step=max(width / 4, 4.0))
        src = np.vstack([lm[moving], lm[fixed], cheeks, border])
        move = np.vstack([disp[moving], np.zeros((len(src) - len(moving), 2))])
        self._inner_src = lm[60:68].copy()
        self._lip_lift_vec = disp[62].copy()
        # How much the portrait itself shows its upper teeth (an already parted mouth).
        self._src_gap = float(np.dot(lm[66] - lm[62], down))
        self._src_teeth = float(np.clip((self._src_gap / width - 0.06) / 0.06, 0.0, 1.0))
        self._inner_disp = disp[60:68].copy()

        # Backward maps per openness level on a coarse grid (ROI-local source coordinates).
        rw, rh = x1 - x0, y1 - y0
        scale = min(1.0, _GRID_MAX / max(rw, rh))
        gw, gh = max(2, round(rw * scale)), max(2, round(rh * scale))
        # Coarse samples at the pixel centres cv2.resize(INTER_LINEAR) assumes, so the
        # upsampled field is exact at them.
        gx = x0 - 0.5 + (np.arange(gw) + 0.5) * rw / gw
        gy = y0 - 0.5 + (np.arange(gh) + 0.5) * rh / gh
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        self._levels = np.empty((_LEVELS, gh, gw, 2), np.float32)
        for k in range(_LEVELS):
            a = k / (_LEVELS - 1)
            if a == 0:
                self._levels[k] = 0.0
                continue
            dst = src + a * move
            wts = _tps_weights(dst, -a * move)
            self._levels[k] = _tps_eval(wts, dst, grid).reshape(gh, gw, 2)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self._base_x, self._base_y = xs, ys

    @staticmethod
    def _border_anchors(x0: int, y0: int, x1: int, y1: int, step: float) -> np.ndarray:
        nx = max(2, int(np.ceil((x1 - x0) / step)) + 1)
        ny = max(2, int(np.ceil((y1 - y0) / step)) + 1)
        xs = np.linspace(x0, x1 - 1, nx)
        ys = np.linspace(y0, y1 - 1, ny)
        pts = [(x, y0) for x in xs] + [(x, y1 - 1) for x in xs]
        pts += [(x0, y) for y in ys[1:-1]] + [(x1 - 1, y) for y in ys[1:-1]]
        return np.array(pts, dtype=np.float64)

    def render(self, openness: float) -> np.ndarray:
        """Return a new (H, W, 3) uint8 frame with the mouth opened by ``openness``.

        ``openness`` is clipped to [0, 1]; 0 returns an exact copy of the portrait and
        only pixels inside ``roi`` ever differ from it.
        """
        a = float(np.clip(openness, 0.0, 1.0)) if np.isfinite(openness) else 0.0
        out = self._image.copy()
        if a <= 0.0:
            return out
        x0, y0, x1, y1 = self.roi
        pos = a * (_LEVELS - 1)
        k = min(int(pos), _LEVELS - 2)
        f = pos - k
        coarse = (1.0 - f) * self._levels[k] + f * self._levels[k + 1]
        field = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        map_x = self._base_x + field[..., 0]
        map_y = self._base_y + field[..., 1]
        roi = cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._paint_interior(roi, a)
        out[y0:y1, x0:x1] = roi
        return out

    def _paint_interior(self, roi: np.ndarray, a: float) -> None:
        """Darken the opened mouth (inside the displaced inner lips) in place."""
        x0, y0 = self.roi[:2]
        inner = self._inner_src + a * self._inner_disp - (x0, y0)  # ROI-local, order 60..67
        gap = float(np.linalg.norm(inner[6] - inner[2]))  # 66 vs 62: vertical opening
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
            upper = local[[0, 1, 2, 3, 4]]  # 60, 61, 62, 63, 64
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
