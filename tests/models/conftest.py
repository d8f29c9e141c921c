"""Model-algorithm tests: make the Triton model folders importable (they are not packages).

Each folder is what Triton's python backend puts on sys.path for its model.py. Modules shared
between models (face_detection.py, mouth_motion.py, shared.py) are symlinks to one file, so
whichever folder a name is found in, it is the same code.

Fixtures: the sample portrait (RGB) and its 68 face landmarks, for the face and mouth tests.
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import PORTRAIT

ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = ROOT / "model_repository"
for _model_dir in (
    MODEL_REPOSITORY / "face_landmarks/1",
    MODEL_REPOSITORY / "talking_avatar/1",
    MODEL_REPOSITORY / "lipsync/1",
    MODEL_REPOSITORY / "audio_analysis/1",
):
    if str(_model_dir) not in sys.path:
        sys.path.insert(0, str(_model_dir))


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """samples/portrait.jpg as RGB."""
    return cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def landmarks(portrait) -> np.ndarray:
    """The portrait's face landmarks (dlib's 68 points)."""
    from face_mesh import FaceAnalyzer

    faces = FaceAnalyzer().analyze(portrait)
    assert faces, "no face found in the sample portrait"
    return faces[0].landmarks
