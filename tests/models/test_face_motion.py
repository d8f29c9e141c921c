"""Eyelids, brows and head motion on the sample portrait; viseme basis shapes."""

import numpy as np
import pytest
from face_motion import FaceMotion
from mouth_render import MouthRenderer
from visemes import WEIGHTS


@pytest.fixture(scope="module")
def face(portrait, landmarks) -> FaceMotion:
    return FaceMotion(portrait.shape, landmarks)


@pytest.fixture(scope="module")
def mouth(portrait, landmarks) -> MouthRenderer:
    return MouthRenderer(portrait, landmarks)


def test_zero_is_identity(face, portrait):
    out = face.apply(portrait.copy(), 0.0, 0.0, np.zeros(3))
    assert np.array_equal(out, portrait)


def test_blink_covers_the_eye_only(face, portrait, landmarks):
    closed = face.apply(portrait.copy(), 1.0, 0.0, np.zeros(3))
    changed = np.any(closed != portrait, axis=2)
    ys, xs = np.nonzero(changed)
    eyes = landmarks[36:48]
    width = eyes[:, 0].max() - eyes[:, 0].min()
    assert xs.min() >= eyes[:, 0].min() - 0.3 * width
    assert xs.max() <= eyes[:, 0].max() + 0.3 * width
    assert ys.max() <= eyes[:, 1].max() + 0.2 * width
    # the iris (dark) is covered by lighter lid skin
    for idx in (slice(36, 42), slice(42, 48)):
        c = landmarks[idx].mean(0).astype(int)
        before = portrait[c[1] - 1 : c[1] + 2, c[0] - 1 : c[0] + 2].mean()
        after = closed[c[1] - 1 : c[1] + 2, c[0] - 1 : c[0] + 2].mean()
        assert after > before + 15
    half = face.apply(portrait.copy(), 0.5, 0.0, np.zeros(3))
    assert (
        0 < np.abs(half.astype(int) - portrait).sum() < np.abs(closed.astype(int) - portrait).sum()
    )


def test_brows_lift_without_moving_the_eyes(face, portrait, landmarks):
    raised = face.apply(portrait.copy(), 0.0, 1.0, np.zeros(3))
    assert np.abs(raised.astype(int) - portrait).sum() > 0
    top = int(landmarks[[37, 38, 43, 44], 1].min())
    assert np.array_equal(raised[top:], portrait[top:])


@pytest.mark.parametrize("pose", [(6, 0, 0), (0, 5, 0), (0, 0, 4), (-6, -5, -4)])
def test_head_motion_keeps_border_and_face_in_frame(face, portrait, pose):
    out = face.apply(portrait.copy(), 0.0, 0.0, np.array(pose, float))
    assert np.abs(out.astype(int) - portrait).mean() > 0.2
    h, w = portrait.shape[:2]
    border = np.ones((h, w), bool)
    border[1:-1, 1:-1] = False  # the outermost ring never moves
    assert np.array_equal(out[border], portrait[border])


def test_viseme_shapes_differ(mouth, landmarks):
    x0, y0 = landmarks[48:68].min(0).astype(int) - 5
    x1, y1 = landmarks[48:68].max(0).astype(int) + 8
    crops = {}
    for v, w in WEIGHTS.items():
        img = mouth.render(0.7 * w[0], np.array(w[1:]))
        crops[v] = img[y0:y1, x0:x1].astype(np.float32)
    keys = sorted(crops)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert np.abs(crops[a] - crops[b]).mean() > 1.0, (a, b)
