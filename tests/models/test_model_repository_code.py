"""model_repository/: each model folder is self-contained for Triton, code shared between
models is shared on purpose (a relative symlink to one file whose header names who shares
it), and the numbers both sides of the wire rely on agree with the server's."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import shared
from face_mesh import FaceAnalyzer
from skimage import data

from a2v_server import catalog, domain

MODEL_REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
MODEL_DIRS = sorted(p.parent for p in MODEL_REPOSITORY.glob("*/1/model.py"))


def _local_modules() -> set[str]:
    return {p.stem for d in MODEL_DIRS for p in d.glob("*.py")}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_model_folder_holds_the_modules_it_imports():
    local = _local_modules()
    for folder in MODEL_DIRS:
        present = {p.stem for p in folder.glob("*.py")}
        for path in folder.glob("*.py"):
            missing = (_imports(path) & local) - present
            assert not missing, f"{path.relative_to(MODEL_REPOSITORY)} imports {missing}"


def test_shared_modules_are_relative_symlinks_whose_header_names_the_sharers():
    links = [p for d in MODEL_DIRS for p in d.glob("*.py") if p.is_symlink()]
    assert {p.name for p in links} >= {"shared.py", "mouth_motion.py", "face_mesh.py"}
    for link in links:
        target = link.readlink()
        assert not target.is_absolute(), f"{link}: {target} (breaks when the repository moves)"
        original = link.resolve()
        assert original.is_relative_to(MODEL_REPOSITORY) and not original.is_symlink()
        header = ast.get_docstring(ast.parse(original.read_text())) or ""
        sharer = link.parent.parent.name  # model_repository/<model>/1/<module>.py
        owner = original.parent.parent.name
        assert "Shared by" in header and sharer in header and owner in header, link


def test_the_models_take_the_audio_rate_and_frame_rates_the_server_sends():
    assert shared.SAMPLE_RATE == catalog.MODEL_SAMPLE_RATE
    assert shared.MAX_FPS == domain.MAX_FPS


@pytest.mark.parametrize("fps", [1, 12.5, 23.976, 24, 25, 29.97, 30, 47.952, 59.94, 60])
def test_the_server_and_the_models_count_the_same_frames(fps):
    """A clip's frame count is decided on both sides (the server expects what the model
    sends): on every sample count around each frame boundary, and on the half frames where
    half-to-even and half-up rounding differ, they must agree."""
    wire_fps = float(np.float32(fps))  # the FPS tensor the model gets
    boundaries = [round(k * catalog.MODEL_SAMPLE_RATE / fps) for k in np.arange(0, 40, 0.5)]
    for samples in {max(0, b + d) for b in boundaries for d in range(-2, 3)}:
        assert catalog.frame_count(samples, fps) == shared.frame_count(samples, wire_fps), samples
    # halves round up, at any rate: 0.5 frame is one frame, 2.5 frames are three
    assert catalog.frame_count(320, 25) == 1 and catalog.frame_count(1600, 25) == 3


def test_the_landmark_names_cover_the_68_points_once():
    regions = [shared.JAW, shared.BROWS, shared.NOSE, shared.EYES, shared.MOUTH]
    assert sorted(i for r in regions for i in r) == list(range(shared.N_LANDMARKS))
    assert sorted([*shared.OUTER_LIPS, *shared.INNER_LIPS]) == list(shared.MOUTH)
    assert sorted([*shared.RIGHT_EYE, *shared.LEFT_EYE]) == list(shared.EYES)
    upper = [shared.MOUTH_RIGHT, *shared.UPPER_LIP, shared.MOUTH_LEFT, *shared.LOWER_LIP]
    assert upper == list(shared.OUTER_LIPS)
    inner = [shared.INNER_RIGHT, *shared.INNER_UPPER_LIP, shared.INNER_LEFT]
    assert inner + list(shared.INNER_LOWER_LIP) == list(shared.INNER_LIPS)


def test_the_landmark_names_match_a_real_face():
    """On an upright face: the right eye is on the image's left, the chin lowest, and so on."""
    (face,) = FaceAnalyzer().analyze(data.astronaut())
    lm = face.landmarks
    assert len(lm) == shared.N_LANDMARKS
    assert lm[shared.RIGHT_EYE, 0].mean() < lm[shared.LEFT_EYE, 0].mean()
    assert lm[shared.MOUTH_RIGHT, 0] < lm[shared.MOUTH_LEFT, 0]
    assert lm[shared.CHIN, 1] == lm[shared.JAW, 1].max()
    assert lm[shared.BROWS, 1].mean() < lm[shared.EYES, 1].mean() < lm[shared.NOSE_TIP, 1]
    assert lm[shared.NOSE_TIP, 1] <= lm[shared.NOSE_BOTTOM, 1] < lm[shared.MOUTH, 1].min()
    assert lm[shared.UPPER_LIP_MIDDLE, 1] < lm[shared.INNER_UPPER_MIDDLE, 1]
    assert lm[shared.INNER_LOWER_MIDDLE, 1] < lm[shared.LOWER_LIP_MIDDLE, 1]
    assert lm[shared.UPPER_LIDS, 1].max() < lm[shared.EYES, 1].max()
    right_wing, left_wing = lm[shared.NOSE_WINGS]
    assert right_wing[0] < lm[shared.NOSE_TIP, 0] < left_wing[0]
