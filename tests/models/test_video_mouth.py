"""lipsync/1/video_mouth.py: the mouth of a real face (skimage's astronaut) re-animated.

What a viewer sees is measured again with dlib's landmarks on the output: the mouth opens as
far as asked, a mouth open in the source closes, and nothing above the mouth and jaw moves.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from face_detection import FaceAnalyzer
from shared import EYES, INNER_LIPS, JAW, NOSE_TIP, face_axes
from skimage import data
from video_mouth import inner_gap, reanimate


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def face(analyzer) -> tuple[np.ndarray, np.ndarray]:
    image = np.ascontiguousarray(data.astronaut())
    (found,) = analyzer.analyze(image)
    return image, found.landmarks


def _measured_gap(analyzer: FaceAnalyzer, frame: np.ndarray) -> float:
    """The inner-lip gap dlib sees in ``frame``, in pixels."""
    (found,) = analyzer.analyze(frame)
    return inner_gap(found.landmarks)


def test_the_mouth_opens_as_far_as_asked(analyzer, face):
    image, lm = face
    width = face_axes(lm)[1]
    gaps = [_measured_gap(analyzer, reanimate(image, lm, a)) for a in (0.0, 0.5, 1.0)]
    assert gaps[0] < 0.05 * width  # shut
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[2] > 0.2 * width  # wide open: OPEN_GAP (0.3) of the mouth width asked


def test_a_mouth_open_in_the_source_closes_in_silence(analyzer, face):
    image, lm = face
    source_gap = inner_gap(lm)
    assert source_gap > 0.1 * face_axes(lm)[1]  # she smiles with her teeth showing
    closed = reanimate(image, lm, 0.0)
    assert _measured_gap(analyzer, closed) < 0.3 * source_gap
    # The teeth between the lips are covered: the inner-lip area is no longer the source's.
    x0, y0 = np.floor(lm[INNER_LIPS].min(0)).astype(int)
    x1, y1 = np.ceil(lm[INNER_LIPS].max(0)).astype(int)
    inside = np.abs(closed[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1])
    assert inside.mean() > 10


@pytest.mark.parametrize("openness", [0.0, 0.4, 1.0])
def test_only_the_mouth_and_jaw_change(face, openness):
    image, lm = face
    out = reanimate(image, lm, openness)
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.any(out != image, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(ys) > 500  # a visible change
    # Eyes and everything above them, and whatever lies beside the jaw, are the source's.
    assert ys.min() > lm[EYES, 1].max()
    assert ys.min() < lm[NOSE_TIP, 1]  # the upper lip's surroundings blend in too
    width = face_axes(lm)[1]
    assert xs.min() >= lm[JAW, 0].min() - 0.4 * width
    assert xs.max() <= lm[JAW, 0].max() + 0.4 * width
    assert ys.max() <= lm[JAW, 1].max() + 0.8 * width


def test_a_frame_already_in_the_asked_pose_is_returned_as_it_is(face):
    image, lm = face
    already = reanimate(image, lm, 1.0)
    width = face_axes(lm)[1]
    # Asking for the opening the landmarks already show changes nothing (sub-pixel).
    same = reanimate(image, lm, inner_gap(lm) / (0.30 * width))
    assert same is image
    assert already is not image


def test_a_tilted_face_opens_along_its_own_axis(analyzer, face):
    image, _ = face
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 20.0, 1.0)
    tilted = cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    (found,) = analyzer.analyze(tilted)
    down, width = face_axes(found.landmarks)
    assert abs(np.degrees(np.arctan2(down[0], down[1]))) > 10  # the face's "down" is tilted
    gaps = [_measured_gap(analyzer, reanimate(tilted, found.landmarks, a)) for a in (0.0, 1.0)]
    assert gaps[1] - gaps[0] > 0.15 * width
