"""Landmark-driven mouth/jaw animation of a still portrait (pure numpy/OpenCV, no Triton).

Setup (once per portrait): control points on the lips, jaw, nose and cheeks get a
displacement for the fully open pose (lower lip and chin down, upper lip slightly up,
corners slightly down and inward; nose and everything above stay put), plus zero-motion
anchors on the border of a region of interest (ROI) around mouth and jaw. For a ladder of
openness levels, a thin-plate spline through the *displaced* control points gives the
exact backward map (output pixel -> source pixel) of that pose, stored on a coarse grid
(each made when a frame first needs it).

Per frame: blend the two neighbouring levels, upsample, ``cv2.remap`` the ROI only, then
paint the mouth interior inside the displaced inner-lip polygon (dark gradient plus a hint
of upper teeth) through a feathered mask. Nothing outside the ROI is ever touched.

The painting is in mouth_paint.py, the spline evaluation on the coarse grid in grid_splines.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from grid_splines import GridSplines
from mouth_paint import close_lips, paint_fv_teeth, paint_interior, paint_seam
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
    tps_weights,
)

#: the smallest Jacobian determinant the mouth's backward map may have (1 = rigid; below 0 the
#: map folds: a region shown twice, mirrored)
MIN_DET = 0.05
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
_INNER_LOWER_MIDDLE_ROW = INNER_LOWER_MIDDLE - INNER_LIPS[0]
_UPPER_MIDDLE = UPPER_LIP[1:-1]  # the three points around the upper lip's middle
_LOWER_MIDDLE = LOWER_LIP[1:-1]


class _DenseInnerLips:
    """The mesh's 20 inner-lip points (the opening's outline, cyclic like INNER_LIPS: the
    upper edge from the right corner, then the lower edge back), moved with the 8 inner points
    of the 68: each dense point takes the displacement interpolated along its edge from the
    two 68-point neighbours (the warp is smooth between them, so they agree within a pixel)."""

    #: MediaPipe mesh indices: inner upper lip 78 -> 308, then the inner lower lip back
    OUTLINE = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
    OUTLINE += (324, 318, 402, 317, 14, 87, 178, 88, 95)
    UPPER = 11  # the first 11 are the upper edge
    #: rows of INNER_LIPS along each edge, corner to corner
    _UPPER_ROWS = (0, 1, 2, 3, 4)
    _LOWER_ROWS = (4, 5, 6, 7, 0)

    def __init__(self, mesh: np.ndarray, inner8: np.ndarray, right: np.ndarray) -> None:
        self.points = np.asarray(mesh, np.float64)[list(self.OUTLINE), :2]
        self._along = self.points @ right  # position along the mouth, per dense point
        self._along8 = inner8 @ right

    def moved(self, disp8: np.ndarray) -> np.ndarray:
        """The outline with the 8 inner points displaced by ``disp8`` (8, 2)."""
        out = self.points.copy()
        for dense, rows in (
            (slice(0, self.UPPER), self._UPPER_ROWS),
            (slice(self.UPPER, None), self._LOWER_ROWS),
        ):
            rows_ = list(rows)
            order = np.argsort(self._along8[rows_])
            xs = self._along8[rows_][order]
            for k in range(2):
                out[dense, k] += np.interp(self._along[dense], xs, disp8[rows_][order, k])
        return out


@dataclass(frozen=True)
class Pose:
    """A mouth pose as rendered: its openness and shape weights (after the fold guard), the
    backward map over the renderer's ROI, and the ROI pixels the mouth interior covers."""

    openness: float
    shapes: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray
    covered: np.ndarray


class MouthRenderer:
    """Renders a portrait with its mouth opened by ``openness`` in [0, 1]."""

    def __init__(
        self, portrait_rgb: np.ndarray, landmarks: np.ndarray, mesh: np.ndarray | None = None
    ):
        """Precompute the jaw-opening warp for ``portrait_rgb`` (H, W, 3 uint8 RGB) from its
        68 iBUG ``landmarks`` (68, 2) in pixel coordinates of this image. With the face
        ``mesh`` (478, 2+), the mouth opening is outlined by its 20 inner-lip points instead of
        a curve through the 8 of the 68."""
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
        self._dense = None if mesh is None else _DenseInnerLips(mesh, lm[INNER_LIPS], right)
        # How much the portrait itself shows its upper teeth (an already parted mouth).
        self._src_gap = float(np.dot(lm[INNER_LOWER_MIDDLE] - lm[INNER_UPPER_MIDDLE], down))
        self._src_teeth = float(np.clip((self._src_gap / width - 0.06) / 0.06, 0.0, 1.0))
        self._inner_disp = disp[INNER_LIPS]
        # The face's colour, for painting in its tone: the skin between nose and upper lip.
        top = lm[NOSE_BOTTOM] + 0.25 * (lm[UPPER_LIP_MIDDLE] - lm[NOSE_BOTTOM])
        r = max(1, int(0.08 * width))
        patch = img[int(top[1]) : int(top[1]) + r, int(top[0]) - r : int(top[0]) + r + 1]
        self._skin_rgb = (
            np.median(patch.reshape(-1, 3), 0).astype(np.float32)
            if patch.size
            else np.array([205.0, 160.0, 135.0], np.float32)
        )

        # Backward maps per openness level on a coarse grid (ROI-local source coordinates).
        rw, rh = x1 - x0, y1 - y0
        scale = min(1.0, _GRID_MAX / max(rw, rh))
        gw, gh = max(2, round(rw * scale)), max(2, round(rh * scale))
        # Coarse samples at the pixel centres cv2.resize(INTER_LINEAR) assumes, so the
        # upsampled field is exact at them.
        gx = x0 - 0.5 + (np.arange(gw) + 0.5) * rw / gw
        gy = y0 - 0.5 + (np.arange(gh) + 0.5) * rh / gh
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        self._grid_step = (rw / gw, rh / gh)
        # The fields are made when a frame first needs them (_level, _basis_field), not here:
        # a sequence's first frames use a few of the 21, which cost ~2 ms each on the bench
        # machine, and the setup was on the way to the first chunk (42-50 ms for all of them,
        # now ~4 ms). A field is the same numbers whenever it is made.
        self._splines = GridSplines(grid, src[len(moving) :])  # only the first len(moving) move
        self._src, self._move, self._grid_shape = src, move, (gh, gw, 2)
        self._levels: list[np.ndarray | None] = [np.zeros(self._grid_shape, np.float32)]
        self._levels += [None] * (_LEVELS - 1)
        # The ROI's pixel coordinates as a row and a column, broadcast where they are added
        # (the same sums as full-size grids, without making two ROI-sized arrays per portrait).
        self._base_x = np.arange(x0, x1, dtype=np.float32)[None, :]
        self._base_y = np.arange(y0, y1, dtype=np.float32)[:, None]

        # Lip-shape basis poses (viseme rendering): forward displacements of the lip points
        # at weight 1; each gets its own backward field (TPS through the same anchors), and
        # weights blend them linearly with the openness ladder (small displacements).
        self._basis_moves = []
        self._basis_inner = np.zeros((len(BASES), 8, 2))
        for b, name in enumerate(BASES):
            bdisp = self._basis_disp(name, lm, down, right, width, mouth)
            self._basis_moves.append(
                np.vstack([bdisp[moving], np.zeros((len(src) - len(moving), 2))])
            )
            self._basis_inner[b] = bdisp[INNER_LIPS]
        self._basis_fields: list[np.ndarray | None] = [None] * len(BASES)

    def _field(self, move: np.ndarray) -> np.ndarray:
        """The backward field on the coarse grid of the pose whose control points move by
        ``move``: a thin-plate spline through the displaced points, back to where they were."""
        dst = self._src + move
        field = self._splines.eval(tps_weights(dst, -move), dst).reshape(self._grid_shape)
        return field.astype(np.float32)

    def _level(self, k: int) -> np.ndarray:
        """The backward field of openness k / (_LEVELS - 1)."""
        field = self._levels[k]
        if field is None:
            field = self._levels[k] = self._field(k / (_LEVELS - 1) * self._move)
        return field

    def _basis_field(self, b: int) -> np.ndarray:
        """The backward field of lip-shape basis pose ``b`` at weight 1."""
        field = self._basis_fields[b]
        if field is None:
            field = self._basis_fields[b] = self._field(self._basis_moves[b])
        return field

    def _basis_disp(self, name, lm, down, right, width, mouth) -> np.ndarray:
        """Forward displacement (68, 2) of the lip landmarks for one basis pose."""
        d = np.zeros((N_LANDMARKS, 2))
        side = np.sign((lm - mouth) @ right)  # -1 left half, +1 right half
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
        elif name == "press":  # M/B/P: lips thin out; they meet in render() (close_lips)
            # Not by moving the inner lips onto each other here: a spline that collapses the
            # gap between them to a line folds (the teeth turned into a mirrored pink blob).
            for i in _UPPER_MIDDLE:
                d[i] = down * 0.02 * width
            for i in _LOWER_MIDDLE:
                d[i] = -down * 0.025 * width
            for i in (MOUTH_RIGHT, MOUTH_LEFT):
                d[i] = -right * side[i] * 0.02 * width
        elif name == "fv":  # F/V: lower lip up under the upper teeth (the rest in render())
            for i in _LOWER_MIDDLE:
                d[i] = -down * 0.04 * width
            for i in INNER_LOWER_LIP:
                d[i] = -down * 0.03 * width
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
        out = self._image.copy()
        pose = self.pose(openness, shapes)
        if pose is None:
            return out
        a, w, map_x, map_y = pose.openness, pose.shapes, pose.map_x, pose.map_y
        x0, y0, x1, y1 = self.roi
        roi = cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        inner = self._inner(a, w) - (x0, y0)  # ROI-local, rows of INNER_LIPS
        outline = None
        if self._dense is not None:
            outline = self._dense.moved(self._inner(a, w) - self._inner_src) - (x0, y0)
        if a > 0.0 or (self._src_teeth > 0 and np.any(w > 1e-3)):
            paint_interior(
                roi,
                inner,
                a,
                width=self._width,
                portrait=self._image,
                origin=(x0, y0),
                src_inner=self._inner_src - (x0, y0),
                jaw=a * self._inner_disp[_INNER_LOWER_MIDDLE_ROW],
                src_gap=self._src_gap,
                src_teeth=self._src_teeth,
                skin=self._skin_rgb,
                outline=outline,
            )
        if w[3] > 1e-3:
            # the lower lip rises most of the way to the upper teeth, which show above it
            close_lips(roi, inner, 0.7 * min(w[3], 1.0), width=self._width)
            paint_fv_teeth(roi, inner, w[3], width=self._width)
        if w[2] > 1e-3:
            close_lips(roi, inner, min(w[2], 1.0), width=self._width)
            paint_seam(roi, inner, min(w[2], 1.0), width=self._width)
        out[y0:y1, x0:x1] = roi
        return out

    def pose(self, openness: float, shapes=None) -> Pose | None:
        """The pose actually rendered, with its backward map over ``roi`` (output pixel ->
        portrait pixel), or None for the portrait itself.

        The ladder and the basis fields are each one-to-one where the picture shows, but their
        sum need not be (a wide-open, rounded and spread mouth at once): when the map's
        Jacobian determinant falls below MIN_DET anywhere outside the mouth opening (which the
        interior covers: opening a shut mouth stretches the lip line into it, a degenerate map
        nobody sees), openness and shapes are scaled down together until it does not. The
        mouth then opens a little less than asked, and never folds."""
        a = float(np.clip(openness, 0.0, 1.0)) if np.isfinite(openness) else 0.0
        w = np.zeros(len(BASES))
        if shapes is not None:
            w = np.nan_to_num(np.clip(np.asarray(shapes, np.float64).ravel()[: len(BASES)], 0, 1.5))
        if a <= 0.0 and not np.any(w > 1e-3):
            return None
        if self._visible_min_det(a, w) < MIN_DET:
            lo, hi = 0.0, 1.0
            for _ in range(8):
                mid = (lo + hi) / 2
                if self._visible_min_det(a * mid, w * mid) >= MIN_DET:
                    lo = mid
                else:
                    hi = mid
            a, w = a * lo, w * lo
        x0, y0, x1, y1 = self.roi
        coarse = self._coarse(a, w)
        field = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        covered = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if a > 0.0:
            cv2.fillPoly(covered, [np.round(self._inner(a, w) - (x0, y0)).astype(np.int32)], 1)
        return Pose(a, w, self._base_x + field[..., 0], self._base_y + field[..., 1], covered > 0)

    def _inner(self, a: float, w: np.ndarray) -> np.ndarray:
        """The displaced inner-lip points (rows of INNER_LIPS) in portrait pixels."""
        return self._inner_src + a * self._inner_disp + np.tensordot(w, self._basis_inner, 1)

    def _visible_min_det(self, a: float, w: np.ndarray) -> float:
        """The map's smallest Jacobian determinant on the coarse grid, outside the opening."""
        coarse = self._coarse(a, w)
        sx, sy = self._grid_step
        dxy, dxx = np.gradient(coarse[..., 0], sy, sx)
        dyy, dyx = np.gradient(coarse[..., 1], sy, sx)
        det = (1 + dxx) * (1 + dyy) - dxy * dyx
        if a > 0.0:  # the opening is painted over: leave it (and one grid cell around) out
            x0, y0 = self.roi[:2]
            cells = (self._inner(a, w) - (x0, y0)) / (sx, sy)
            hidden = np.zeros(det.shape, np.uint8)
            cv2.fillPoly(hidden, [np.round(cells).astype(np.int32)], 1)
            hidden = cv2.dilate(hidden, np.ones((3, 3), np.uint8))
            det = np.where(hidden > 0, 1.0, det)
        return float(det.min())

    def _coarse(self, a: float, w: np.ndarray) -> np.ndarray:
        """The backward displacement on the coarse grid for openness ``a``, shape weights ``w``."""
        pos = a * (_LEVELS - 1)
        k = min(int(pos), _LEVELS - 2)
        f = pos - k
        coarse = (1.0 - f) * self._level(k) + f * self._level(k + 1)
        for b in np.nonzero(w > 1e-3)[0]:
            coarse = coarse + np.float32(w[b]) * self._basis_field(int(b))
        return coarse
