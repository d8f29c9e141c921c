"""The head's pose as a 3D rotation of its surface (with the face mesh): the displacement field.

Held apart from face_motion.py because it is the one part of the face's motion that needs
depth: the mesh's z is spread over a coarse grid (so the field is smooth and reaches past the
mesh over hair and ears), rotated about a pivot at the neck and projected orthographically.
FaceMotion (face_motion.py) builds one ``MeshHeadRotation`` per portrait on its coarse grid
and head mask, asks it for the forward displacement of each pose, and warps the image with it
exactly as it does the 2D head motion (no mesh: a roll about the mouth plus shifts, there).

The mask includes mouth and jaw (unlike the 2D motion's): the mouth renderer drew them before
this warp, so they turn with the face. The field's Jacobian is checked on the coarse grid and
the field scaled down before it could fold, so no pose can tear or mirror the image.
"""

from __future__ import annotations

import math

import numpy as np
from shared import CHIN, NOSE_BRIDGE

#: MediaPipe face-mesh points on the face's outline (ear to chin to ear): their depth, plus
#: a margin, places the neck pivot behind the face
FACE_OUTLINE = [127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 454]


class MeshHeadRotation:
    """The head as a 3D surface on FaceMotion's coarse grid (``px``, ``py``), turned by a pose
    (yaw, pitch, roll degrees) about the neck; ``weight`` is the head mask on that grid."""

    def __init__(
        self,
        mesh: np.ndarray,
        lm: np.ndarray,
        px: np.ndarray,
        py: np.ndarray,
        face_w: float,
        weight: np.ndarray,
    ):
        """Each grid point gets a depth from the mesh (a Gaussian-weighted mean of the nearby
        mesh points' z, so the field is smooth and reaches past the mesh over hair and ears
        with the depth of the face's edge), and the pivot sits at the neck: level with the
        chin, behind the face's outline."""
        self.weight = weight
        pts = mesh[:468]  # the face surface (irises excluded: they sit on it)
        sigma = 0.12 * face_w
        grid = np.stack([px.ravel(), py.ravel()], 1).astype(np.float32)
        xy = pts[:, :2].astype(np.float32)
        d2 = (grid * grid).sum(1)[:, None] + (xy * xy).sum(1)[None, :] - 2.0 * grid @ xy.T
        d2 -= d2.min(1, keepdims=True)  # far from the mesh: the nearest points' depth
        k = np.exp(d2 * np.float32(-0.5 / (sigma * sigma)))
        z = (k @ pts[:, 2].astype(np.float32)).astype(np.float64) / k.sum(1)
        outline = mesh[FACE_OUTLINE]
        self.pivot = np.array(
            [
                float(lm[NOSE_BRIDGE, 0].mean()),
                float(lm[CHIN, 1]),
                float(outline[:, 2].mean()) + 0.3 * face_w,
            ]
        )
        self.xyz = np.stack([px.ravel(), py.ravel(), z], 1) - self.pivot
        #: the grid's spacing (x, y) in pixels, for the Jacobian
        self.step = (float(px[0, 1] - px[0, 0]), float(py[1, 0] - py[0, 0]))

    def field(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward displacement (dx, dy) on the coarse grid for a pose (yaw, pitch, roll
        degrees): the head surface rotated about the neck and projected orthographically,
        weighted by the head mask. Scaled down, should it ever fold (the Jacobian of the moved
        grid below 0.5: not at the poses the animator produces)."""
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
        p = self.xyz
        moved = p @ rot.T
        shape = self.weight.shape
        dx = (moved[:, 0] - p[:, 0]).reshape(shape) * self.weight
        dy = (moved[:, 1] - p[:, 1]).reshape(shape) * self.weight
        gx, gy = self.step
        for _ in range(6):
            jxx, jxy = np.gradient(dx, gy, gx)[::-1]
            jyx, jyy = np.gradient(dy, gy, gx)[::-1]
            det = (1.0 + jxx) * (1.0 + jyy) - jxy * jyx
            if float(det.min()) >= 0.5:
                break
            dx, dy = 0.5 * dx, 0.5 * dy
        return dx.astype(np.float32), dy.astype(np.float32)
