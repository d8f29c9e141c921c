"""Face tracking through a video: detect, follow with the landmark predictor, smooth.

Landmarks are cached per *source* frame index: lipsync modes that revisit frames (loop,
bounce) get exactly the same landmarks again, so a revisited frame never jitters. A frame
without a face is recorded as None and passed through untouched by the renderer.
"""

from __future__ import annotations

import numpy as np
from face_detection import Face, FaceAnalyzer

#: full detection every this many source frames even while tracking (re-syncs drift, finds
#: faces that enter the picture)
REDETECT_EVERY = 15
#: landmark motion (mean px per frame) below which the head counts as still and is smoothed
#: hard; above it the filter opens up so real motion is not lagged (a One-Euro-style filter)
STILL_PX = 1.5


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_of(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """A detector-like box around landmarks (dlib boxes sit a little inside the jaw line)."""
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    return float(x0), float(y0), float(x1), float(y1)


class FaceTracker:
    """Landmarks for each source frame of one video.

    ``face_index`` picks the n-th largest face, ``face_box`` (x0, y0, x1, y1 in frame pixels)
    the face overlapping it most; once picked, the same face is followed by overlap.
    """

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        face_index: int = 0,
        face_box: tuple[float, float, float, float] | None = None,
    ) -> None:
        self._analyzer = analyzer
        self._face_index = face_index
        self._face_box = face_box
        self._cache: dict[int, np.ndarray | None] = {}

    def landmarks(self, index: int, frame: np.ndarray) -> np.ndarray | None:
        if index in self._cache:
            return self._cache[index]
        previous = self._cache.get(index - 1)
        if previous is None or index % REDETECT_EVERY == 0:
            face = self._pick(self._analyzer.analyze(frame), previous)
            box = face.box if face is not None else None
        else:
            box = box_of(previous)
        if box is None:
            self._cache[index] = None
            return None
        found = self._analyzer.landmarks_in(frame, box)
        if previous is not None:
            speed = float(np.abs(found - previous).mean())
            alpha = min(1.0, 0.3 + 0.7 * max(0.0, speed - 0.3) / STILL_PX)
            found = (previous + alpha * (found - previous)).astype(np.float32)
        self._cache[index] = found
        return found

    def _pick(self, faces: list[Face], previous: np.ndarray | None) -> Face | None:
        if not faces:
            return None
        if previous is not None:  # keep following the same person
            prev_box = box_of(previous)
            best = max(faces, key=lambda f: _iou(f.box, prev_box))
            return best if _iou(best.box, prev_box) > 0.1 else None
        if self._face_box is not None:
            best = max(faces, key=lambda f: _iou(f.box, self._face_box))
            return best if _iou(best.box, self._face_box) > 0.0 else None
        if self._face_index < len(faces):
            return faces[self._face_index]
        return None
