"""lipsync/1/face_track.py: a face followed through a synthetic video (skimage's astronaut).

The landmarks are what the renderer warps, so they must stay on the face as it moves, hold
still on a revisited frame (loop/bounce modes), give up where there is no face (the frame
passes through) and pick the face the caller asked for.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from face_mesh import FaceAnalyzer, box_of
from face_track import REDETECT_EVERY, FaceTracker
from skimage import data


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    move = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = image.shape[:2]
    return cv2.warpAffine(image, move, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _centre(landmarks: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box_of(landmarks)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


def test_the_landmarks_follow_a_moving_face(analyzer, astronaut):
    tracker = FaceTracker(analyzer)
    start = _centre(analyzer.analyze(astronaut)[0].landmarks)
    # 4 px per frame to the right and 2 px down: past a re-detection (every 15 frames)
    steps = np.array([4.0, 2.0])
    for i in range(REDETECT_EVERY + 5):
        found = tracker.landmarks(i, _shifted(astronaut, *(i * steps)))
        assert found is not None, f"face lost at frame {i}"
        assert found.shape == (68, 2)
        # The smoothing may lag a fast head a little, never by more than a step or two.
        np.testing.assert_allclose(_centre(found), start + i * steps, atol=6.0)


def test_a_still_face_does_not_jitter(analyzer, astronaut):
    tracker = FaceTracker(analyzer)
    rng = np.random.default_rng(0)
    marks = []
    for i in range(12):  # the same face with fresh sensor noise in every frame
        noise = rng.normal(0.0, 3.0, astronaut.shape)
        frame = np.clip(astronaut + noise, 0, 255).astype(np.uint8)
        marks.append(tracker.landmarks(i, frame))
    motion = np.abs(np.diff(np.stack(marks[1:]), axis=0)).mean()
    assert motion < 0.3  # px per frame: the mouth drawn on these landmarks stays put


def test_a_revisited_frame_gets_the_same_landmarks(analyzer, astronaut):
    tracker = FaceTracker(analyzer)
    frames = [_shifted(astronaut, 3.0 * i, 0.0) for i in range(6)]
    first = [tracker.landmarks(i, f) for i, f in enumerate(frames)]
    # bounce: 5, 4, 3 ... come back; the output must not differ from the first pass
    for i in reversed(range(6)):
        np.testing.assert_array_equal(tracker.landmarks(i, frames[i]), first[i])


def test_frames_without_a_face_give_none_until_a_face_appears(analyzer, astronaut):
    tracker = FaceTracker(analyzer)
    blank = np.full_like(astronaut, 128)
    video = [blank] * 3 + [astronaut] * 2 + [_shifted(astronaut, 10.0, 0.0)] * 2
    found = [tracker.landmarks(i, frame) for i, frame in enumerate(video)]
    assert [m is not None for m in found] == [False] * 3 + [True] * 4
    assert _centre(found[-1])[0] - _centre(found[3])[0] == pytest.approx(10.0, abs=3.0)


def test_a_face_that_leaves_is_dropped_by_the_next_detection(analyzer, astronaut):
    tracker = FaceTracker(analyzer)
    blank = np.full_like(astronaut, 128)
    assert tracker.landmarks(0, astronaut) is not None
    for i in range(1, REDETECT_EVERY):
        tracker.landmarks(i, blank)
    assert tracker.landmarks(REDETECT_EVERY, blank) is None
    assert tracker.landmarks(REDETECT_EVERY + 1, blank) is None


@pytest.fixture(scope="module")
def two_faces(astronaut) -> np.ndarray:
    """The astronaut on the left and a smaller copy of her head on the right (640 x 360: the
    detector sees it at full size)."""
    canvas = np.full((360, 640, 3), 90, np.uint8)
    canvas[:, :320] = astronaut[:360, 60:380]
    head = cv2.resize(astronaut[40:300, 110:370], (208, 208), interpolation=cv2.INTER_AREA)
    canvas[80:288, 400:608] = head
    return canvas


def test_the_largest_face_by_default_and_the_chosen_one_otherwise(analyzer, two_faces):
    assert len(analyzer.analyze(two_faces)) == 2
    largest = FaceTracker(analyzer).landmarks(0, two_faces)
    assert _centre(largest)[0] < 320
    second = FaceTracker(analyzer, face_index=1).landmarks(0, two_faces)
    assert _centre(second)[0] > 400
    boxed = FaceTracker(analyzer, face_box=(420.0, 100.0, 600.0, 280.0)).landmarks(0, two_faces)
    np.testing.assert_allclose(boxed, second, atol=1.0)
    # A face the video does not have: no face, the frames pass through untouched.
    assert FaceTracker(analyzer, face_index=2).landmarks(0, two_faces) is None
    assert (
        FaceTracker(analyzer, face_box=(330.0, 300.0, 390.0, 355.0)).landmarks(0, two_faces) is None
    )


def test_the_chosen_face_is_kept_as_both_move(analyzer, two_faces):
    tracker = FaceTracker(analyzer, face_index=1)
    centres = []
    for i in range(REDETECT_EVERY + 3):  # through a re-detection, which must not switch faces
        centres.append(_centre(tracker.landmarks(i, _shifted(two_faces, -2.0 * i, 0.0))))
    xs = np.array(centres)[:, 0]
    assert np.all(xs > 350)
    assert xs[-1] - xs[0] == pytest.approx(-2.0 * (len(xs) - 1), abs=4.0)
