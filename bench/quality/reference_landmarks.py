"""The quality benchmark's measuring model: face detection and 68-point landmarks with dlib.

The product finds faces with MediaPipe (model_repository/face_landmarks/1/face_mesh.py); the
benchmark judges its outputs with this independent model, which is a development dependency
only (dlib-bin, face_recognition_models: the 68-point predictor's iBUG 300-W training data is
not licensed for commercial use, so it never ships).

Detection runs on a downscaled copy (HOG cost grows with pixel count); the landmark
regression then runs on the full-resolution image inside the mapped-back box, so the
landmarks keep full precision whatever the input size.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# Below this long side (after downscaling) faces may be smaller than dlib's 80x80 HOG
# window, so the detector upsamples the image once.
_UPSAMPLE_BELOW = 400
# Retry once with one more upsampling step when the first pass finds nothing.
_RETRY_UP_TO = 800

# dlib's HOG detector score: > 0 means "face" for its default threshold. Clear frontal
# faces score ~1-3; a small margin above 0 rejects most textured false positives.
_MIN_SCORE = 0.05
# ... and a detection scoring below this fraction of the best one in the image is dropped
_RELATIVE_SCORE = 0.25


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the analysed image."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float  # dlib HOG detector score (higher = more confident)
    landmarks: np.ndarray  # (68, 2) float32 x, y in dlib's 68-point order

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def find_predictor_path() -> Path:
    """Locate the 68-point shape predictor shipped by ``face_recognition_models``.

    The package is found with importlib rather than imported: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "models" / _PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    raise RuntimeError(
        f"dlib landmark model {_PREDICTOR_FILE} not found: install the "
        "'face_recognition_models' package (searched: "
        f"{[str(Path(p) / 'models') for p in locations] or 'package not installed'})"
    )


class FaceAnalyzer:
    """Finds frontal faces and their 68 landmarks in RGB images of any size."""

    def __init__(self, max_analysis_side: int = 640):
        """Load dlib's HOG face detector and the 68-point shape predictor.

        ``max_analysis_side`` bounds the long side of the image the detector sees.
        """
        if max_analysis_side < 64:
            raise ValueError("max_analysis_side must be >= 64")
        self.max_analysis_side = int(max_analysis_side)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(find_predictor_path()))

    def analyze(self, image_rgb: np.ndarray) -> list[Face]:
        """Detect faces in an HxWx3 uint8 RGB image; largest face first.

        Returns an empty list when no face scores above the acceptance threshold.
        """
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {image.dtype}")
        height, width = image.shape[:2]
        if height < 16 or width < 16:
            return []

        # dlib works on grayscale internally anyway; converting once serves both stages.
        gray = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))

        scale = min(1.0, self.max_analysis_side / max(height, width))
        if scale < 1.0:
            small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(gray, small_size, interpolation=cv2.INTER_AREA)
        else:
            small = gray
        upsample = 1 if max(small.shape) < _UPSAMPLE_BELOW else 0
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        if not any(s >= _MIN_SCORE for s in scores) and max(small.shape) <= _RETRY_UP_TO:
            # Nothing found: the face may be small in a large frame (a person in a wide shot)
            # or the picture tiny. One more pass at twice the resolution finds faces down to
            # ~40 px; it costs ~4x the first pass, only when the first pass failed.
            rects, scores, _ = self._detector.run(small, upsample + 1, 0.0)

        # Exact ratios per axis (rounding of the resized size makes them differ slightly).
        sx = width / small.shape[1]
        sy = height / small.shape[0]
        faces: list[Face] = []
        for rect, score in zip(rects, scores, strict=True):
            if score < _MIN_SCORE:
                continue
            x0 = float(np.clip(rect.left() * sx, 0, width - 1))
            y0 = float(np.clip(rect.top() * sy, 0, height - 1))
            x1 = float(np.clip((rect.right() + 1) * sx, x0 + 1, width))
            y1 = float(np.clip((rect.bottom() + 1) * sy, y0 + 1, height))
            full_rect = dlib.rectangle(round(x0), round(y0), round(x1) - 1, round(y1) - 1)
            shape = self._predictor(gray, full_rect)
            landmarks = np.array(
                [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                dtype=np.float32,
            )
            faces.append(Face(box=(x0, y0, x1, y1), score=float(score), landmarks=landmarks))

        if faces:
            # A weak detection next to a clear face is almost always a false positive (a
            # badge, a pattern on clothes) that "largest first" would otherwise pick.
            best = max(f.score for f in faces)
            faces = [f for f in faces if f.score >= _RELATIVE_SCORE * best]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def landmarks_in(
        self, image_rgb: np.ndarray, box: tuple[float, float, float, float]
    ) -> np.ndarray:
        """The 68 landmarks of the face inside ``box`` (x0, y0, x1, y1), without detection.

        Used to track a face from frame to frame: the previous frame's box is a good enough
        start for the shape predictor, at ~1 ms instead of a ~15 ms detection.
        """
        gray = np.ascontiguousarray(cv2.cvtColor(np.asarray(image_rgb), cv2.COLOR_RGB2GRAY))
        x0, y0, x1, y1 = (round(v) for v in box)
        shape = self._predictor(gray, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array(
            [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
            dtype=np.float32,
        )
