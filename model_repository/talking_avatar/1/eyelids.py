"""The eyelids' blink on a still portrait: one class per eye, built once per portrait.

Held apart from the rest of the face's motion because a blink never leaves its eye's box and
needs nothing of brows or head: FaceMotion (face_motion.py) builds two eyes with ``make_eyes``
and calls ``apply`` on each (the boxes do not overlap, so both read and write in place).

* ``LandmarkEye`` (68 landmarks only): the upper eyelid slides down over the eye. Inside the
  eye's box the image is resampled from above (``src(x, y - d)``, d = blink * lid opening at
  that column), so the lid is the portrait's own skin from above the eye and the lash line
  travels with it; a feathered mask keeps the part of the eye below the moving lid edge
  untouched. At blink 1 the lid edge lies just past the lower lid.
* ``MeshEye`` (MediaPipe mesh, 478 points with irises): the lids follow the dense eye
  contours; the lid's lash line and fold slide down rigidly while the plain skin above them
  stretches, so at blink 1 the upper lid meets the lower lid over the iris and the eye's
  interior is all lid skin (never the eye's own pixels smeared), with the iris circle (from
  its rim points) always covered.
Blink 0 is never applied (the caller skips it), so the portrait stays untouched.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from shared import BROWS, LEFT_EYE, RIGHT_EYE

# An eye's six points (rows of lm[RIGHT_EYE] or lm[LEFT_EYE]): a corner, two on the upper lid,
# the other corner, two on the lower lid (clockwise on the image).
_CORNERS = (0, 3)
_UPPER_LID_ROWS = [0, 1, 2, 3]
_LOWER_LID_ROWS = [0, 5, 4, 3]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    # face_motion.py keeps its own copy: three lines do not earn a module both would import
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class LandmarkEye:
    """A blink on the 68 landmarks' six points per eye (no mesh): the upper lid, the portrait's
    own skin from above the eye, slides down to just past the lower lid."""

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


class MeshEye:
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


def make_eyes(
    lm: np.ndarray, mesh: np.ndarray | None, shape: tuple[int, int]
) -> list[LandmarkEye | MeshEye]:
    """The two eyes (the subject's right, on the image's left, first): on the mesh's contours
    when there is a mesh (the lid's room below each brow from the 68 points' brows), else on
    the 68 landmarks."""
    if mesh is None:
        return [LandmarkEye(lm, list(RIGHT_EYE), shape), LandmarkEye(lm, list(LEFT_EYE), shape)]
    brows = lm[BROWS]
    return [
        MeshEye(
            mesh,
            MESH_RIGHT_UPPER,
            MESH_RIGHT_LOWER,
            MESH_RIGHT_IRIS,
            float(brows[:5, 1].max()),
            shape,
        ),
        MeshEye(
            mesh,
            MESH_LEFT_UPPER,
            MESH_LEFT_LOWER,
            MESH_LEFT_IRIS,
            float(brows[5:, 1].max()),
            shape,
        ),
    ]
