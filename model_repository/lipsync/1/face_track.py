"""Face tracking through a video: detect now and then, follow the mesh, smooth without lag.

Full analysis (MediaPipe full-range BlazeFace over the whole frame, then the mesh: ~15 ms at
1080p) runs on the first frame and whenever the face is lost; in between, the landmarker's own
tracking follows the face in a window around it (~2.5 ms), and every REDETECT_EVERY frames a
detection (~7 ms) checks that a face is really still there. Where the mouth did not move
against the head since the frame before, that frame's mesh moved with the head stands in for
the landmarker's (still_mouth.py: ~0.3 ms; at most REUSE_RUN frames in a row, never where a
detection checks). A One-Euro filter (Casiez et al., CHI 2012) smooths every mesh point: its
cut-off frequency rises with the point's speed, so a still head does not jitter and a moving
one is not trailed.

Meshes are cached per *source* frame index: lipsync modes that revisit frames (loop, bounce)
get exactly the same landmarks again, so a revisited frame never jitters. A frame without a
face is recorded as None and passed through untouched by the renderer.

Frames may be crops of the video's frames (the server sends a window around the face, and
whole frames while it has none): ``origin`` is the crop's top-left pixel in the whole frame.
Detection and analysis run on the crop and their results are moved by the origin; the
follower keeps its window in whole-frame pixels (MeshFollower). Meshes, the cache, and
``face_box`` are all in whole-frame pixels, whatever crop a mesh was found in, so the same
face gives the same mesh in any crop that holds the follower's window.
"""

from __future__ import annotations

import math

import numpy as np
from face_mesh import DLIB68, Face, FaceAnalyzer, MeshFollower, box_of, iou
from still_mouth import StillMouth

#: a detection checks every this many source frames that the followed face is still there (the
#: tracker's own presence score rarely, but sometimes, keeps a face on a background)
REDETECT_EVERY = 15
#: at most this many frames in a row take the mesh before them moved with the head instead of
#: the landmarker's (still_mouth.py): the landmarker sees at least every other frame
REUSE_RUN = 1
#: One-Euro filter: cut-off at rest (Hz) and its growth with speed (per face width per second);
#: the speed itself is smoothed at D_CUTOFF. Tuned on the tests' still and moving heads: < 0.3
#: px jitter on a still head under sensor noise, < 1 px behind a head moving 100 px/s.
MIN_CUTOFF = 1.0
BETA = 40.0
D_CUTOFF = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One-Euro filter over a (points, dims) array; speed is measured in face widths."""

    def __init__(self, fps: float) -> None:
        self._dt = 1.0 / max(1.0, fps)
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def reset(self) -> None:
        self._value = self._speed = None

    def __call__(self, points: np.ndarray, face_width: float) -> np.ndarray:
        if self._value is None or self._speed is None:
            self._value = points.astype(np.float64)
            self._speed = np.zeros(len(points))
            return points
        raw_speed = np.linalg.norm(points[:, :2] - self._value[:, :2], axis=1) / self._dt
        self._speed += _alpha(D_CUTOFF, self._dt) * (raw_speed - self._speed)
        cutoff = MIN_CUTOFF + BETA * self._speed / max(face_width, 1.0)
        a = np.asarray(_alpha(cutoff, self._dt))[:, None]
        self._value = self._value + a * (points - self._value)
        return self._value.astype(np.float32)


class FaceTracker:
    """The face mesh for each source frame of one video.

    ``face_index`` picks the n-th largest face, ``face_box`` (x0, y0, x1, y1 in whole-frame
    pixels) the face overlapping it most; once picked, the same face is followed by overlap.
    ``follower`` is the model instance's tracking graph (one sequence runs at a time per
    instance; building a graph per video would cost ~40 ms and its memory).
    """

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        face_index: int = 0,
        face_box: tuple[float, float, float, float] | None = None,
        fps: float = 25.0,
        follower: MeshFollower | None = None,
    ) -> None:
        self._analyzer = analyzer
        self._face_index = face_index
        self._face_box = face_box
        self._filter = OneEuro(fps)
        self._follower = follower or MeshFollower()
        self._follower.restart()
        self._cache: dict[int, np.ndarray | None] = {}
        self._last = -2  # the source index the filter saw last
        self._still = StillMouth()
        self._raw: np.ndarray | None = None  # the last frame's mesh, unsmoothed
        self._reused = 0  # frames in a row given the mesh before them, moved

    def landmarks(
        self, index: int, frame: np.ndarray, origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray | None:
        """The 68 iBUG points of the followed face in source frame ``index`` (or None)."""
        mesh = self.mesh(index, frame, origin)
        return None if mesh is None else np.ascontiguousarray(mesh[DLIB68, :2])

    def mesh(
        self, index: int, frame: np.ndarray, origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray | None:
        """The smoothed (478, 3) mesh of the followed face in source frame ``index``, in
        whole-frame pixels; ``frame`` is the crop whose top-left pixel is ``origin`` (x, y)."""
        if index in self._cache:
            return self._cache[index]
        ox, oy = int(origin[0]), int(origin[1])
        previous = self._cache.get(index - 1)
        found = None
        if previous is not None and self._last == index - 1:
            # the last mesh moved with the head, when the mouth kept its shape (still_mouth.py);
            # the landmarker at least every REUSE_RUN + 1 frames, and where a detection checks
            if self._reused < REUSE_RUN and index % REDETECT_EVERY != 0 and self._raw is not None:
                found = self._still.moved(frame, (ox, oy), self._raw)
            self._reused = self._reused + 1 if found is not None else 0
            if found is None:
                found = self._follower.follow(frame, box_of(previous), (ox, oy))
            if found is not None and index % REDETECT_EVERY == 0:
                here = box_of(found)
                boxes = self._analyzer.detect(frame)
                if not any(iou(_moved_box(box, ox, oy), here) > 0.1 for box in boxes):
                    found = None
        if found is None:
            self._follower.restart()
            self._reused = 0
            faces = [_moved(f, ox, oy) for f in self._analyzer.analyze(frame, thorough=False)]
            face = self._pick(faces, previous)
            found = face.mesh if face is not None else None
        self._raw = found
        self._still.remember(frame, (ox, oy), self._follower.window, found)
        if found is None:
            self._cache[index] = None
            return None
        if previous is None or self._last != index - 1:
            self._filter.reset()  # a new stretch: the start, a seek, or the face came back
        self._last = index
        x0, _, x1, _ = box_of(found)
        smoothed = self._filter(found, x1 - x0)
        self._cache[index] = smoothed
        return smoothed

    def _pick(self, faces: list[Face], previous: np.ndarray | None) -> Face | None:
        if not faces:
            return None
        if previous is not None:  # keep following the same person
            prev_box = box_of(previous)
            best = max(faces, key=lambda f: iou(f.box, prev_box))
            return best if iou(best.box, prev_box) > 0.1 else None
        wanted = self._face_box
        if wanted is not None:
            best = max(faces, key=lambda f: iou(f.box, wanted))
            return best if iou(best.box, wanted) > 0.0 else None
        if self._face_index < len(faces):
            return faces[self._face_index]
        return None


def _moved_box(box: tuple[float, ...], dx: int, dy: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return x0 + dx, y0 + dy, x1 + dx, y1 + dy


def _moved(face: Face, dx: int, dy: int) -> Face:
    """``face`` found in a crop, in the pixels of the frame whose pixel (dx, dy) is the crop's
    top-left one."""
    if dx == dy == 0:
        return face
    mesh = (face.mesh.astype(np.float64) + np.array([dx, dy, 0])).astype(np.float32)
    return Face(box=_moved_box(face.box, dx, dy), score=face.score, mesh=mesh)
