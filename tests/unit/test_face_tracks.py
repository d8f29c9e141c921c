"""ListFaces' tracker: faces followed from look to look by box overlap, numbered as
FaceSelector counts (largest first in the first look with faces, later ones as they come)."""

from __future__ import annotations

import numpy as np
import pytest

from a2v_server.inference.backend import Face
from a2v_server.pipeline.face_list import _Tracker


def _face(x: float, y: float, side: float = 100, score: float = 0.9) -> Face:
    return Face((x, y, x + side, y + side), score, np.zeros((68, 2), np.float32))


def test_faces_keep_their_index_while_they_move_and_new_ones_follow():
    tracker = _Tracker(step_seconds=0.5)
    tracker.look([], 0.0)  # a title card
    tracker.look([_face(500, 100, 200), _face(100, 100, 120)], 0.5)  # largest first
    for k in range(1, 5):  # both drift right, 10 px a look
        tracker.look([_face(500 + 10 * k, 100, 200), _face(100 + 10 * k, 100, 120)], 0.5 + k / 2)
    tracker.look([_face(500, 100, 200), _face(900, 400, 150), _face(150, 100, 120)], 3.0)
    faces = tracker.faces()
    assert [f.index for f in faces] == [0, 1, 2]
    assert faces[0].box == (500, 100, 700, 300) and faces[1].box == (100, 100, 220, 220)
    assert faces[2].first_seconds == 3.0 and faces[2].visible_seconds == 0.5
    assert (faces[0].first_seconds, faces[0].last_seconds) == (0.5, 3.0)
    assert faces[0].visible_seconds == pytest.approx(3.0)  # 6 looks of 0.5 s


def test_a_face_that_jumps_is_a_new_face_and_one_back_soon_is_the_same():
    tracker = _Tracker(step_seconds=0.5)
    tracker.look([_face(100, 100)], 0.0)
    tracker.look([], 0.5)  # gone for a look (turned away)
    tracker.look([_face(105, 100)], 1.0)  # back: the same face
    tracker.look([_face(700, 100)], 1.5)  # somewhere else: another face
    tracker.look([], 2.0)
    tracker.look([], 4.5)
    tracker.look([_face(100, 100)], 5.0)  # back after 4 s: forgotten, a new face
    assert [(f.index, f.visible_seconds) for f in tracker.faces()] == [(0, 1.0), (1, 0.5), (2, 0.5)]
