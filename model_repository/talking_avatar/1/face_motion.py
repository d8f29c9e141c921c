"""Eyelids, eyebrows and head motion on a still portrait (numpy/OpenCV, precomputed per portrait).

FaceMotion is what the animator and model.py use: built once per portrait, ``apply`` moves
the brows, then the lids, then the head of one frame. It holds the brows and the head's mask,
2D motion and warp itself; the two parts that have a model of their own live apart:

* Blink: eyelids.py (``make_eyes``): per eye, the upper lid (the portrait's own skin from
  above the eye) slides down to the lower lid, on the 68 landmarks or, with the face mesh, on
  the dense eye contours over the iris.
* Brows: the brow band is lifted (``src(x, y + d)``) with a displacement that is largest on the
  brow line and fades to zero on the upper eyelids and high on the forehead, so eyes never move.
* Head: a displacement field on a coarse grid, weighted by a head mask (full on the upper head,
  fading to zero around it and below the neck, and zero on the box's border, so the frame
  border, shoulders and background stay put and the face can never leave the frame),
  upsampled and applied as one backward remap. Without the mesh the field is a rotation (roll)
  about the mouth plus a shift for yaw/pitch, fading out down to the nose tip so mouth and jaw
  stay still (the mouth animation stays stable). With the mesh (MediaPipe, 478 points with
  irises; ``FaceMotion(..., mesh=...)``) it is head_pose.py's 3D rotation of the head's
  surface about the neck, mouth and jaw included (the mouth renderer drew them before this
  warp, so they turn with the face).
All warps touch only their precomputed boxes; zero values return the input untouched.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from eyelids import LandmarkEye, MeshEye, make_eyes
from head_pose import MeshHeadRotation
from shared import (
    BROWS,
    CHIN,
    EYES,
    JAW,
    MOUTH,
    N_LANDMARKS,
    NOSE_BOTTOM,
    NOSE_BRIDGE,
    UPPER_LIDS,
)

#: MediaPipe face mesh: 468 surface points and 10 iris points (the MESH input's rows)
N_MESH = 478


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class FaceMotion:
    def __init__(
        self, image_shape: tuple[int, int], landmarks: np.ndarray, mesh: np.ndarray | None = None
    ):
        lm = np.asarray(landmarks, np.float64).reshape(N_LANDMARKS, 2)
        h, w = image_shape[:2]
        self.shape = (h, w)
        self._mesh = None if mesh is None else np.asarray(mesh, np.float64).reshape(N_MESH, 3)
        self._eyes: list[LandmarkEye | MeshEye] = make_eyes(lm, self._mesh, (h, w))
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
            self._head_3d = MeshHeadRotation(self._mesh, lm, px, py, self._face_w, self._head_w)
        else:
            nose_y, eyes_y = float(lm[NOSE_BOTTOM, 1]), float(lm[EYES, 1].mean())
            wgt *= _smoothstep((nose_y - py) / max(nose_y - eyes_y, 1.0))
            self._head_w = wgt.astype(np.float32)
        self._head_p = np.stack([px, py], -1).astype(np.float32)
        # The box's pixel coordinates as a row and a column, broadcast where they are used
        # (the same numbers as full-size grids: at 1080p the head box is up to ~1000x950 and
        # the grids and the taper's temporaries cost ~15 ms per portrait, before any frame).
        hx = np.arange(hx0, hx1, dtype=np.float32)[None, :]
        hy = np.arange(hy0, hy1, dtype=np.float32)[:, None]
        self._head_base = (hx, hy)
        # Full-resolution taper: exactly 0 on the box's outer pixels (the upsampled coarse
        # field alone is not). The smoothstep of the distance to the nearest edge, made from
        # the row's and the column's: it rises with the distance, so the smaller of the two
        # smoothsteps is the smoothstep of the smaller distance, bit for bit.
        tx = _smoothstep(np.minimum(hx - hx0, hx1 - 1 - hx) / 4.0).astype(np.float32)
        ty = _smoothstep(np.minimum(hy - hy0, hy1 - 1 - hy) / 4.0).astype(np.float32)
        self._head_taper = np.minimum(tx, ty)

    def _head_field(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 3D head's forward displacement (dx, dy) on the coarse grid (head_pose.py)."""
        return self._head_3d.field(pose)

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
