"""Eyelids, eyebrows and head motion on a still portrait (numpy/OpenCV, precomputed per portrait).

* Blink: per eye, the upper eyelid slides down over the eye. Inside the eye's box the image is
  resampled from above (``src(x, y - d)``, d = blink * lid opening at that column), so the lid
  is the portrait's own skin from above the eye and the lash line travels with it; a feathered
  mask keeps the part of the eye below the moving lid edge untouched. At blink 1 the lid edge
  lies just past the lower lid.
* Brows: the brow band is lifted (``src(x, y + d)``) with a displacement that is largest on the
  brow line and fades to zero on the upper eyelids and high on the forehead, so eyes never move.
* Head: a rotation (roll) about the mouth plus a shift for yaw/pitch, applied as a
  displacement field that is full on the upper head and fades to zero around it and down to
  the nose tip, so mouth, jaw, frame border, shoulders and background stay put (the mouth
  animation stays stable) and the face can never leave the frame.
With the face mesh (MediaPipe, 478 points with irises; ``FaceMotion(..., mesh=...)``):
* Blink (``_MeshEye``): the lids follow the dense eye contours; the lid's lash line and fold
  slide down rigidly while the plain skin above them stretches, so at blink 1 the upper lid
  meets the lower lid over the iris and the eye's interior is all lid skin (never the eye's own
  pixels smeared), with the iris circle (from its rim points) always covered.
* Head: small 3D rotations (yaw, pitch, roll) of the head's surface (depth from the mesh, spread
  smoothly over hair and ears) about a pivot at the neck, projected orthographically; the
  displacement is weighted by the same head mask (zero outside the head and below the neck) but
  includes mouth and jaw, which the mouth renderer drew before this warp, so they turn with the
  face. The field's Jacobian is checked on the coarse grid (scaled down before it could fold).
All warps touch only their precomputed boxes; zero values return the input untouched.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from shared import (
    BROWS,
    CHIN,
    EYES,
    JAW,
    LEFT_EYE,
    MOUTH,
    N_LANDMARKS,
    NOSE_BOTTOM,
    NOSE_BRIDGE,
    RIGHT_EYE,
    UPPER_LIDS,
)

# An eye's six points (rows of lm[RIGHT_EYE] or lm[LEFT_EYE]): a corner, two on the upper lid,
# the other corner, two on the lower lid (clockwise on the image).
_CORNERS = (0, 3)
_UPPER_LID_ROWS = [0, 1, 2, 3]
_LOWER_LID_ROWS = [0, 5, 4, 3]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class _Eye:
    def __init__(self, lm: np.ndarray, idx: list[int], shape: tuple[int, int]):
        p = lm[idx]
        h, w = shape
        ew = max(float(np.linalg.norm(p[_CORNERS[1]] - p[_CORNERS[0]])), 4.0)
        upper = p[_UPPER_LID_ROWS]
        lower = p[_LOWER_LID_ROWS]
        o = np.argsort(upper[:, 0])
        upper = upper[o]
        lower = lower[np.argsort(lower[:, 0])]
        opening = float(max(np.max(lower[:, 1]) - np.min(upper[:, 1]), 2.0))
        x0 = max(int(math.floor(upper[0, 0] - 0.25 * ew)), 0)
        x1 = min(int(math.ceil(upper[-1, 0] + 0.25 * ew)) + 1, w)
        y0 = max(int(math.floor(upper[:, 1].min() - 2.0 * opening - 0.15 * ew)), 0)
        y1 = min(int(math.ceil(lower[:, 1].max() + 0.2 * ew)) + 1, h)
        self.box = (x0, y0, x1, y1)
        xs = np.arange(x0, x1, dtype=np.float64)
        yu = np.interp(xs, upper[:, 0], upper[:, 1])
        yl = np.interp(xs, lower[:, 0], lower[:, 1])
        # The lid covers the opening plus a margin so lashes rest on the lower lid.
        lid = np.maximum(yl - yu, 0.0) + 0.06 * ew
        span = max(upper[-1, 0] - upper[0, 0], 1.0)
        u = (xs - upper[0, 0]) / span
        wx = _smoothstep((u + 0.12) / 0.2) * _smoothstep((1.12 - u) / 0.2)
        self._lid = (lid * wx)[None, :]  # (1, W)
        self._yu = yu[None, :]
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        # Skin band above the upper lid that is stretched down over the eye.
        self._band = np.maximum(0.45 * float(lid.max()), 2.0) * wx[None, :] + 1e-3
        self._ys = ys
        xs2, _ = np.meshgrid(xs, ys[:, 0])
        self._mx = xs2.astype(np.float32)

    def apply(self, img: np.ndarray, src: np.ndarray, blink: float) -> None:
        x0, y0, x1, y1 = self.box
        close = blink * self._lid
        edge = self._yu + close  # new lid edge per column
        top = self._yu - self._band
        # [top, yu] (skin, then the lash line just above yu) onto [top, edge]: the lash line
        # keeps its thickness (1:1 near the edge), only the skin above it is stretched.
        lash = 0.3 * self._band
        knee = edge - lash
        skin = top + (self._ys - top) * (self._band - lash) / (self._band - lash + close)
        src_y = np.where(self._ys >= knee, self._yu - (edge - self._ys), skin)
        inside = (self._ys >= top) & (self._ys <= edge + 1.0)
        my = np.where(inside, src_y, self._ys).astype(np.float32)
        warped = cv2.remap(src, self._mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # The stretched skin is smoothed (no streaks from stray lashes); the lash line is not.
        soft = cv2.GaussianBlur(warped, (0, 0), sigmaX=1.0, sigmaY=2.5).astype(np.float32)
        keep = np.clip((self._ys - knee) / 1.5 + 0.5, 0.0, 1.0)
        keep = np.maximum(keep, np.clip(1.0 - (self._ys - top) / (0.5 * self._band), 0.0, 1.0))
        keep = keep[..., None]
        warped = soft + (warped.astype(np.float32) - soft) * keep
        mask = np.clip((edge + 0.75 - self._ys) / 1.5, 0.0, 1.0) * (self._ys >= top)
        mask = mask * np.clip(close / (0.25 * self._lid.max() + 1e-6), 0.0, 1.0)
        roi = img[y0:y1, x0:x1].astype(np.float32)
        roi += (warped - roi) * mask[..., None]
        img[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


#: MediaPipe face-mesh eye contours, each from the outer to the inner corner (checked on
#: samples/portrait.jpg by plotting: 33 is the outer corner of the subject's right eye, on the
#: image's left), and the iris: centre, then four rim points
MESH_RIGHT_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
MESH_RIGHT_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
MESH_LEFT_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
MESH_LEFT_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
MESH_RIGHT_IRIS = [468, 469, 470, 471, 472]
MESH_LEFT_IRIS = [473, 474, 475, 476, 477]
N_MESH = 478


class _MeshEye:
    """A blink on the dense eye contours (MediaPipe mesh): the upper lid's edge slides down to
    the lower lid, and everything between the lid's old and new edge is the lid.

    Per column the lid is the portrait's own upper-lid skin, from the lash line up to a band
    well below the brow: the lash line (a thin dark strip just above the lid margin) moves down
    with the edge 1:1, the skin above it stretches (less than 2x, so it keeps its texture) and
    nothing from inside the eye (iris, sclera) is ever sampled: the source rows all lie above the
    upper lid's contour. At blink 1 the edge passes the lower lid and the visible iris (its
    circle from the rim points, where the lower contour sits high on it) by a small overlap, so
    the eye's interior is all lid skin. Pixels below the moving edge are untouched.
    """

    def __init__(
        self,
        mesh: np.ndarray,
        upper: list[int],
        lower: list[int],
        iris: list[int],
        brow_y: float,
        shape: tuple[int, int],
    ):
        h, w = shape
        up = mesh[upper, :2].astype(np.float64)
        lo = mesh[lower, :2].astype(np.float64)
        up = up[np.argsort(up[:, 0])]
        lo = lo[np.argsort(lo[:, 0])]
        ew = max(float(np.linalg.norm(mesh[upper[-1], :2] - mesh[upper[0], :2])), 4.0)
        c = mesh[iris[0], :2].astype(np.float64)
        r = float(np.linalg.norm(mesh[iris[1:], :2] - c, axis=1).mean())
        r = float(np.clip(r, 0.1 * ew, 0.35 * ew))
        self.iris = (float(c[0]), float(c[1]), r)
        xa, xb = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        x0 = max(int(math.floor(xa - 0.1 * ew)), 0)
        x1 = min(int(math.ceil(xb + 0.1 * ew)) + 1, w)
        xs = np.arange(x0, x1, dtype=np.float64)
        yu = np.interp(xs, up[:, 0], up[:, 1])
        yl = np.maximum(np.interp(xs, lo[:, 0], lo[:, 1]), yu)
        # Where the lower contour runs across the iris, the lid still has to cover the iris's
        # visible part (the circle's bottom, if the lower lid does not hide it).
        dx = np.clip(np.abs(xs - c[0]) / r, 0.0, 1.0)
        iris_bottom = c[1] + r * np.sqrt(1.0 - dx * dx)
        yl = np.where(dx < 1.0, np.maximum(yl, np.minimum(iris_bottom, yl + 0.3 * r)), yl)
        opening = yl - yu
        hmax = max(float(opening.max()), 1.0)
        # The closed lid overlaps the lower lid a little (its lashes rest on it), tapering to
        # nothing at the corners.
        overlap = 0.25 * r * np.clip(opening / (0.5 * hmax), 0.0, 1.0)
        self._close = (opening + overlap)[None, :]  # edge travel at blink 1, per column
        # The lid sheet: the lash line and the lid's fold just above the margin (the darkest
        # skin of the lid) slides down rigidly; the skin above it, up to below the brow, is what
        # stretches, over a tall band so it stays close to 1:1 and keeps its texture.
        self._lash = max(1.0, 0.16 * ew)
        room = max(float(yu.min() - brow_y) - self._lash, 2.0)  # skin between sheet and brow
        self._band = float(max(0.4 * room, 1.2 * hmax))
        # The stretch is concentrated next to the sheet (skin there is plain), so the fold and
        # brow above move little: src = y - close * t**n over the band; n keeps it monotonic
        # (the slope 1 - n * close / (band + close) stays positive at the largest close).
        cmax = float(self._close.max())
        self._power = float(np.clip(0.9 * (self._band + cmax) / max(cmax, 1e-3), 1.0, 2.5))
        self._yu = yu[None, :]
        y0 = max(int(math.floor(yu.min() - self._lash - self._band)) - 1, 0)
        y1 = min(int(math.ceil((yl + overlap).max())) + 2, h)
        self.box = (x0, y0, x1, y1)
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        self._ys = ys
        gx, _ = np.meshgrid(xs, ys[:, 0])
        self._mx = gx.astype(np.float32)

    def apply(self, img: np.ndarray, src: np.ndarray, blink: float) -> None:
        x0, y0, x1, y1 = self.box
        close = blink * self._close
        edge = self._yu + close
        lash, band = self._lash, self._band
        top = self._yu - lash - band
        ys = self._ys
        # [top, yu - lash] (skin) stretched onto [top, edge - lash]; the lash line [yu - lash,
        # yu] moved onto [edge - lash, edge] as it is.
        t = np.clip((ys - top) / (band + close), 0.0, 1.0)
        skin = ys - close * t**self._power
        src_y = np.where(ys >= edge - lash, ys - close, skin)
        my = np.where(ys >= top, np.minimum(src_y, self._yu), ys).astype(np.float32)
        warped = cv2.remap(src, self._mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # The lid covers down to its edge (antialiased over a pixel); below it the eye as is.
        mask = np.clip(edge + 0.5 - ys, 0.0, 1.0) * (ys >= top)
        mask = mask * np.clip(close / 0.5, 0.0, 1.0)
        roi = img[y0:y1, x0:x1].astype(np.float32)
        roi += (warped.astype(np.float32) - roi) * mask[..., None]
        img[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


class FaceMotion:
    def __init__(
        self, image_shape: tuple[int, int], landmarks: np.ndarray, mesh: np.ndarray | None = None
    ):
        lm = np.asarray(landmarks, np.float64).reshape(N_LANDMARKS, 2)
        h, w = image_shape[:2]
        self.shape = (h, w)
        self._mesh = None if mesh is None else np.asarray(mesh, np.float64).reshape(N_MESH, 3)
        self._eyes: list[_Eye | _MeshEye]
        if self._mesh is not None:
            brows = lm[BROWS]
            self._eyes = [
                _MeshEye(
                    self._mesh,
                    MESH_RIGHT_UPPER,
                    MESH_RIGHT_LOWER,
                    MESH_RIGHT_IRIS,
                    float(brows[:5, 1].max()),
                    (h, w),
                ),
                _MeshEye(
                    self._mesh,
                    MESH_LEFT_UPPER,
                    MESH_LEFT_LOWER,
                    MESH_LEFT_IRIS,
                    float(brows[5:, 1].max()),
                    (h, w),
                ),
            ]
        else:
            self._eyes = [_Eye(lm, list(RIGHT_EYE), (h, w)), _Eye(lm, list(LEFT_EYE), (h, w))]
        eye_y = lm[EYES, 1].mean()
        face_w = float(lm[JAW[-1], 0] - lm[JAW[0], 0])
        self._face_w = max(face_w, 8.0)
        self._face_h = max(float(lm[CHIN, 1] - lm[NOSE_BRIDGE[:3], 1].mean()), 8.0) * 1.6

        # Brows: box from well above the brows down to the top of the eyes.
        brow = lm[BROWS]
        brow_eye = max(float(eye_y - brow[:, 1].mean()), 4.0)
        self._brow_lift = 0.22 * brow_eye  # pixels at brow = 1
        bx0 = max(int(brow[:, 0].min() - 0.15 * brow_eye), 0)
        bx1 = min(int(brow[:, 0].max() + 0.15 * brow_eye) + 1, w)
        by0 = max(int(brow[:, 1].min() - 2.2 * brow_eye), 0)
        by1 = min(int(lm[UPPER_LIDS, 1].min()), h)
        self._brow_box = (bx0, by0, bx1, by1)
        if by1 - by0 > 4 and bx1 - bx0 > 4:
            xs = np.arange(bx0, bx1, dtype=np.float64)
            o = np.argsort(brow[:, 0])
            yb = np.interp(xs, brow[o, 0], brow[o, 1])[None, :]
            ys = np.arange(by0, by1, dtype=np.float64)[:, None]
            below = _smoothstep((by1 - ys) / max(by1 - yb.mean(), 1.0))
            above = _smoothstep(1.0 - (yb - ys) / (2.0 * brow_eye))
            prof = np.where(ys >= yb, below, above)
            u = (xs - brow[:, 0].min()) / max(np.ptp(brow[:, 0]), 1.0)
            wx = _smoothstep((u + 0.1) / 0.25) * _smoothstep((1.1 - u) / 0.25)
            self._brow_prof = (prof * wx[None, :]).astype(np.float32)
            gx, gy = np.meshgrid(xs, ys[:, 0])
            self._brow_mx, self._brow_my = gx.astype(np.float32), gy.astype(np.float32)
        else:
            self._brow_prof = None

        # Head: weight 1 on the head, fading to 0 around it and below the chin; coarse grid.
        centre = np.array([lm[NOSE_BRIDGE, 0].mean(), (lm[BROWS[2:-2], 1].min() + lm[CHIN, 1]) / 2])
        centre[1] -= 0.1 * self._face_h
        rx, ry = 0.85 * self._face_w, 0.75 * self._face_h
        self._pivot = lm[MOUTH].mean(0)
        hx0 = max(int(centre[0] - 1.7 * rx), 0)
        hx1 = min(int(centre[0] + 1.7 * rx) + 1, w)
        hy0 = max(int(centre[1] - 1.7 * ry), 0)
        hy1 = min(int(lm[CHIN, 1] + 0.7 * self._face_h) + 1, h)
        self._head_box = (hx0, hy0, hx1, hy1)
        scale = min(1.0, 64.0 / max(hx1 - hx0, hy1 - hy0, 1))
        gw, gh = max(2, round((hx1 - hx0) * scale)), max(2, round((hy1 - hy0) * scale))
        gx = hx0 - 0.5 + (np.arange(gw) + 0.5) * (hx1 - hx0) / gw
        gy = hy0 - 0.5 + (np.arange(gh) + 0.5) * (hy1 - hy0) / gh
        px, py = np.meshgrid(gx, gy)
        r = np.hypot((px - centre[0]) / rx, (py - centre[1]) / ry)
        wgt = _smoothstep((1.6 - r) / 0.6)
        wgt *= _smoothstep((lm[CHIN, 1] + 0.6 * self._face_h - py) / (0.45 * self._face_h))
        # The mouth and jaw stay put (the mouth animation, and whoever measures it, see a
        # stable mouth): the motion fades in from the nose tip up to the eyes, and rolls
        # about the mouth centre, so it reads as the head turning/nodding over the jaw.
        # Zero on the box border (and the frame border) so nothing outside ever moves.
        edge = np.minimum.reduce([px - hx0, hx1 - 1 - px, py - hy0, hy1 - 1 - py]) / 6.0
        wgt *= _smoothstep(edge)
        if self._mesh is not None:
            # 3D: the whole head turns, mouth and jaw included (the mouth is rendered before
            # this warp, so it turns with the face it belongs to).
            self._head_w = wgt.astype(np.float32)
            self._head3d(self._mesh, lm, px, py)
        else:
            nose_y, eyes_y = float(lm[NOSE_BOTTOM, 1]), float(lm[EYES, 1].mean())
            wgt *= _smoothstep((nose_y - py) / max(nose_y - eyes_y, 1.0))
            self._head_w = wgt.astype(np.float32)
        self._head_p = np.stack([px, py], -1).astype(np.float32)
        hy, hx = np.mgrid[hy0:hy1, hx0:hx1].astype(np.float32)
        self._head_base = (hx, hy)
        # Full-resolution taper: exactly 0 on the box's outer pixels (the upsampled coarse
        # field alone is not).
        dist = np.minimum.reduce([hx - hx0, hx1 - 1 - hx, hy - hy0, hy1 - 1 - hy])
        self._head_taper = _smoothstep(dist / 4.0).astype(np.float32)

    def _head3d(self, mesh: np.ndarray, lm: np.ndarray, px: np.ndarray, py: np.ndarray) -> None:
        """The head as a 3D surface on the coarse grid: each grid point gets a depth from the
        mesh (a Gaussian-weighted mean of the nearby mesh points' z, so the field is smooth and
        reaches past the mesh over hair and ears with the depth of the face's edge), and the
        pivot sits at the neck: level with the chin, behind the face's outline."""
        pts = mesh[:468]  # the face surface (irises excluded: they sit on it)
        sigma = 0.12 * self._face_w
        grid = np.stack([px.ravel(), py.ravel()], 1).astype(np.float32)
        xy = pts[:, :2].astype(np.float32)
        d2 = (grid * grid).sum(1)[:, None] + (xy * xy).sum(1)[None, :] - 2.0 * grid @ xy.T
        d2 -= d2.min(1, keepdims=True)  # far from the mesh: the nearest points' depth
        k = np.exp(d2 * np.float32(-0.5 / (sigma * sigma)))
        z = (k @ pts[:, 2].astype(np.float32)).astype(np.float64) / k.sum(1)
        outline = mesh[[127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 454]]
        self._pivot3 = np.array(
            [
                float(lm[NOSE_BRIDGE, 0].mean()),
                float(lm[CHIN, 1]),
                float(outline[:, 2].mean()) + 0.3 * self._face_w,
            ]
        )
        self._head_xyz = np.stack([px.ravel(), py.ravel(), z], 1) - self._pivot3
        self._head_step = (float(px[0, 1] - px[0, 0]), float(py[1, 0] - py[0, 0]))

    def _head_field(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward displacement (dx, dy) on the coarse grid for a pose (yaw, pitch, roll
        degrees): the mesh-derived head surface rotated about the neck and projected
        orthographically, weighted by the head mask. Scaled down, should it ever fold (the
        Jacobian of the moved grid below 0.5: not at the poses the animator produces)."""
        yaw, pitch, roll = (math.radians(float(v)) for v in pose)
        cy, sy = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(pitch), math.sin(pitch)
        cr, sr = math.cos(roll), math.sin(roll)
        # image axes (x right, y down, z away from the camera): yaw > 0 turns the face toward
        # +x, pitch > 0 nods it down, roll > 0 turns it as the 2D rotation by +roll
        r_yaw = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
        r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        rot = r_roll @ r_pitch @ r_yaw
        p = self._head_xyz
        moved = p @ rot.T
        shape = self._head_w.shape
        dx = (moved[:, 0] - p[:, 0]).reshape(shape) * self._head_w
        dy = (moved[:, 1] - p[:, 1]).reshape(shape) * self._head_w
        gx, gy = self._head_step
        for _ in range(6):
            jxx, jxy = np.gradient(dx, gy, gx)[::-1]
            jyx, jyy = np.gradient(dy, gy, gx)[::-1]
            det = (1.0 + jxx) * (1.0 + jyy) - jxy * jyx
            if float(det.min()) >= 0.5:
                break
            dx, dy = 0.5 * dx, 0.5 * dy
        return dx.astype(np.float32), dy.astype(np.float32)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the only pixels ``apply`` may change (lids, brows, head)."""
        boxes = [self._head_box, *(eye.box for eye in self._eyes)]
        if self._brow_prof is not None:
            boxes.append(self._brow_box)
        return _union(boxes)

    # ------------------------------------------------------------------------------------------
    def apply(self, img: np.ndarray, blink: float, brow: float, pose: np.ndarray) -> np.ndarray:
        """Return img (modified in place when possible) with lids, brows and head pose."""
        if brow > 1e-3 and self._brow_prof is not None:
            x0, y0, x1, y1 = self._brow_box
            src = img[y0:y1, x0:x1].copy()
            d = (brow * self._brow_lift) * self._brow_prof
            img[y0:y1, x0:x1] = cv2.remap(
                src,
                self._brow_mx - x0,
                (self._brow_my - y0 + d).astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        if blink > 1e-3:
            for eye in self._eyes:  # the two eye boxes do not overlap: read and write in place
                eye.apply(img, img, blink)
        pose = np.asarray(pose, np.float64)
        if np.any(np.abs(pose) > 1e-3):
            img = self._head(img, pose)
        return img

    def _head(self, img: np.ndarray, pose: np.ndarray) -> np.ndarray:
        if self._mesh is not None:
            dx, dy = self._head_field(pose)
        else:  # 2D: a roll about the mouth plus shifts for yaw and pitch, on the upper head
            yaw, pitch, roll = (float(v) for v in pose)
            th = math.radians(roll)
            c, s = math.cos(th), math.sin(th)
            sx, sy = yaw * 0.011 * self._face_w, pitch * 0.009 * self._face_h
            p = self._head_p - self._pivot.astype(np.float32)
            moved_x = c * p[..., 0] - s * p[..., 1] + sx
            moved_y = s * p[..., 0] + c * p[..., 1] + sy
            # Forward displacement weighted by the head mask; the backward map subtracts it.
            dx = (moved_x - p[..., 0]) * self._head_w
            dy = (moved_y - p[..., 1]) * self._head_w
        x0, y0, x1, y1 = self._head_box
        size = (x1 - x0, y1 - y0)
        # The backward map, base - taper * upsampled field, computed in place (float32
        # throughout: the same numbers as before without four box-sized temporaries).
        maps = []
        for field, base in zip((dx, dy), self._head_base, strict=True):
            f = cv2.resize(field, size, interpolation=cv2.INTER_LINEAR)
            np.multiply(f, self._head_taper, out=f)
            maps.append(np.subtract(base, f, out=f))
        roi = cv2.remap(img, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        img[y0:y1, x0:x1] = roi
        return img


def _union(boxes) -> tuple[int, int, int, int]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
