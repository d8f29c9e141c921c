"""Unit-test setup: make the Triton model folders importable (they are not packages)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _model_dir in (
    ROOT / "model_repository/face_landmarks/1",
    ROOT / "model_repository/talking_avatar/1",
):
    if str(_model_dir) not in sys.path:
        sys.path.insert(0, str(_model_dir))
