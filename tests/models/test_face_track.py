"""lipsync/1/face_track.py: a face followed through a synthetic video (skimage's astronaut).

The landmarks are what the renderer warps, so they must stay on the face as it moves, hold
still on a revisited frame (loop/bounce modes), give up where there is no face (the frame
passes through) and pick the face the caller asked for; where the mouth did not move against
the head, the last mesh moved with the head stands in for the landmarker's (still_mouth.py),
and where it moved, never.
"""

from __future__ import annotations

import cv2
import face_track
import numpy as np
import pytest
from face_mesh import FaceAnalyzer, MeshFollower, box_of
from face_track import REDETECT_EVERY, FaceTracker
from skimage import data
from still_mouth import LIP_POINTS, StillMouth
from video_mouth import inner_gap, reanimate


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


def _coffee(like: np.ndarray) -> np.ndarray:
    """skimage's coffee cup (no face) at the size of ``like``."""
    return cv2.resize(np.ascontiguousarray(data.coffee()), like.shape[1::-1])


def _counted(analyzer: FaceAnalyzer, monkeypatch) -> list[int]:
    """The analyzer's whole-picture searches, counted (a list with one growing number)."""
    calls = [0]
    search = analyzer.analyze

    def counted(image, thorough=True):
        calls[0] += 1
        return search(image, thorough)

    monkeypatch.setattr(analyzer, "analyze", counted)
    return calls


def test_a_picture_without_a_face_is_searched_five_times_a_second_and_after_a_cut(
    analyzer, astronaut, monkeypatch
):
    # A cutaway (a still picture, fresh sensor noise in every frame), then a cut back to the
    # speaker: the face is found on the cut's frame, while the cutaway was searched only every
    # ABSENT_SEARCH_SECONDS (at 25 fps: frames 0, 5, 10), not on each of its 12 frames.
    calls = _counted(analyzer, monkeypatch)
    tracker = FaceTracker(analyzer, fps=25.0)
    rng = np.random.default_rng(1)
    cutaway = _coffee(astronaut)
    video = [np.clip(cutaway + rng.normal(0, 3, cutaway.shape), 0, 255).astype(np.uint8)] * 12
    video += [astronaut, _shifted(astronaut, 3.0, 0.0)]
    searched, found = [], []
    for i, frame in enumerate(video):
        before = calls[0]
        found.append(tracker.landmarks(i, frame) is not None)
        if calls[0] > before:
            searched.append(i)
    every = round(face_track.ABSENT_SEARCH_SECONDS * 25)
    assert found == [False] * 12 + [True] * 2
    assert searched == [*range(0, 12, every), 12]


def test_a_face_coming_into_the_picture_is_found_within_a_fifth_of_a_second(analyzer, astronaut):
    # The astronaut's head slides into a 640x360 cutaway from the right, 8 px a frame: the
    # tracker finds her no later than ABSENT_SEARCH_SECONDS after the first frame in which a
    # search of that frame alone finds her (and never before).
    background = cv2.resize(np.ascontiguousarray(data.coffee()), (640, 360))
    head = cv2.resize(astronaut[20:340, 100:420], (200, 200), interpolation=cv2.INTER_AREA)

    def frame(k: int) -> np.ndarray:
        out = background.copy()
        x0 = 640 - 8 * k
        out[80:280, x0 : min(640, x0 + 200)] = head[:, : min(200, 640 - x0)]
        return out

    video = [frame(k) for k in range(40)]
    reference = FaceAnalyzer()  # (its own: the tracker's keeps no state between searches)
    alone = next(k for k, f in enumerate(video) if reference.analyze(f, thorough=False))
    tracker = FaceTracker(analyzer, fps=25.0)
    first = next(k for k, f in enumerate(video) if tracker.landmarks(k, f) is not None)
    every = round(face_track.ABSENT_SEARCH_SECONDS * 25)
    assert alone <= first < alone + every, (alone, first)


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


# --- crops of the frames (the window the server sends around the face) ------------------------
@pytest.fixture(scope="module")
def moving_on_canvas(astronaut) -> list[np.ndarray]:
    """A 960 x 720 video: the astronaut moving 3 px right and 1.5 px down a frame, past a
    re-detection."""
    canvas = np.full((720, 960, 3), 90, np.uint8)
    video = []
    for i in range(REDETECT_EVERY + 3):
        move = np.float32([[1, 0, 200 + 3.0 * i], [0, 1, 100 + 1.5 * i]])
        frame = cv2.warpAffine(
            astronaut, move, (960, 720), dst=canvas.copy(), borderMode=cv2.BORDER_TRANSPARENT
        )
        video.append(frame)
    return video


def _track(analyzer, video, pieces) -> np.ndarray:
    """Meshes of ``video`` tracked through crops: ``pieces`` are (first, end, origin, size),
    origin None for whole frames."""
    tracker = FaceTracker(analyzer)
    meshes = []
    for a, b, origin, size in pieces:
        for i in range(a, b):
            if origin is None:
                meshes.append(tracker.mesh(i, video[i]))
            else:
                (x, y), (w, h) = origin, size
                meshes.append(tracker.mesh(i, video[i][y : y + h, x : x + w], origin))
    assert all(m is not None for m in meshes)
    return np.stack(meshes)


def _mesh_boxes(meshes: np.ndarray) -> np.ndarray:
    return np.concatenate([meshes[..., :2].min(1), meshes[..., :2].max(1)], axis=-1)


def test_meshes_are_in_whole_frame_pixels_whatever_the_crop(analyzer, moving_on_canvas):
    video, n = moving_on_canvas, len(moving_on_canvas)
    whole = _track(analyzer, video, [(0, n, None, None)])
    # As the server sends them: whole frames until the face is known, then a window around
    # it, moved (and resized) now and then but always around the follower's window: the
    # follower sees the same pixels, so the meshes are the same to the last bit.
    served = _track(
        analyzer,
        video,
        [
            (0, 2, None, None),
            (2, 8, (250, 80), (400, 400)),
            (8, n, (280, 100), (420, 380)),
        ],
    )
    np.testing.assert_array_equal(served, whole)
    # Crops from the start: the face is detected in the crop, where MediaPipe's detector sees
    # other pixels; its mesh (and so the followed ones) differ by a fraction of a pixel.
    for origin, size in (((120, 20), (600, 600)), ((251, 97), (380, 400))):
        cropped = _track(analyzer, video, [(0, n, origin, size)])
        np.testing.assert_allclose(_mesh_boxes(cropped), _mesh_boxes(whole), atol=0.5)
        error = np.abs(cropped[..., :2] - whole[..., :2])
        assert error.mean() < 0.25
        assert error.max() < 1.0  # 0.77 px measured, a point of the first frame's mesh
        assert error[3:].max() < 0.5


def test_a_crop_that_cuts_the_followers_window_restarts_it(analyzer, moving_on_canvas):
    """The window the follower looks through no longer fits in the crop: it restarts with a
    window inside the crop (its tracking state belongs to the pixels it saw) and the face is
    followed on, in whole-frame pixels."""
    video, n = moving_on_canvas, len(moving_on_canvas)
    whole = _track(analyzer, video, [(0, n, None, None)])
    follower = MeshFollower()
    tracker = FaceTracker(analyzer, follower=follower)
    for i in range(3):
        tracker.mesh(i, video[i])
    window = follower.window
    assert window is not None
    x0, y0, x1, y1 = window
    # a crop around the face that cuts the window's left quarter
    origin = (x0 + (x1 - x0) // 4, y0 - 20)
    crop = video[3][origin[1] : y1 + 20, origin[0] : x1 + 60]
    mesh = tracker.mesh(3, crop, origin)
    assert follower.window != window
    assert follower.window is not None and follower.window[0] >= origin[0]  # in the crop
    assert mesh is not None
    np.testing.assert_allclose(_mesh_boxes(mesh[None]), _mesh_boxes(whole[3:4]), atol=1.5)


# --- frames whose mouth did not move: the last mesh moved with the head (still_mouth.py) -----
class CountingFollower(MeshFollower):
    """A MeshFollower that counts the frames the landmarker saw."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def submit(self, *args, **kwargs):
        self.calls += 1
        return super().submit(*args, **kwargs)


def _meshes(analyzer, video, monkeypatch=None, reuse=None) -> tuple[np.ndarray, int]:
    """The tracked meshes of ``video`` and how many frames the landmarker saw (``reuse``: the
    REUSE_RUN to track with, None for the module's)."""
    if reuse is not None:
        monkeypatch.setattr(face_track, "REUSE_RUN", reuse)
    follower = CountingFollower()
    tracker = FaceTracker(analyzer, follower=follower)
    meshes = np.stack([tracker.mesh(i, frame) for i, frame in enumerate(video)])
    if reuse is not None:
        monkeypatch.undo()
    return meshes, follower.calls


def _gaps(meshes: np.ndarray) -> np.ndarray:
    return np.array([inner_gap(m) for m in meshes])


def test_a_still_mouth_on_a_moving_head_skips_the_landmarker_on_every_other_frame(
    analyzer, astronaut, monkeypatch
):
    """The head pans and zooms (sub-pixel steps, as a camera's): on about every other frame the
    last mesh moved with the head stands in for the landmarker's, and the lips stay where the
    landmarker on every frame puts them, within its own jitter."""
    video = []
    for i in range(24):
        zoom = 1.0 + 0.004 * i
        move = np.float32(
            [[zoom, 0, 1.7 * i - 200 * (zoom - 1)], [0, zoom, 0.6 * i - 200 * (zoom - 1)]]
        )
        video.append(cv2.warpAffine(astronaut, move, (512, 512), borderMode=cv2.BORDER_REPLICATE))
    every, every_calls = _meshes(analyzer, video, monkeypatch, reuse=0)
    reused, calls = _meshes(analyzer, video)
    assert every_calls == len(video) - 1  # the first frame is a full analysis
    assert calls <= len(video) // 2 + 3  # ... and the landmarker at least every other frame
    lips = list(LIP_POINTS)
    error = np.abs(reused[:, lips, :2] - every[:, lips, :2])
    assert error.mean() < 0.3 and error.max() < 1.0
    assert np.abs(_gaps(reused) - _gaps(every)).max() < 0.6


def test_a_moving_mouth_is_the_landmarkers_on_every_frame(analyzer, astronaut, monkeypatch):
    """The mouth opens and closes on a still head (a seventh of the way a frame): no frame
    takes the mesh before it, so the meshes are those of the landmarker on every frame, to the
    last bit."""
    (face,) = analyzer.analyze(astronaut)
    openness = np.concatenate([np.linspace(0, 1, 8), np.linspace(1, 0, 8)[1:]])  # 1/7 a frame
    video = [reanimate(astronaut, face.mesh, float(o)) for o in openness]
    every, _ = _meshes(analyzer, video, monkeypatch, reuse=0)
    reused, calls = _meshes(analyzer, video)
    assert calls == len(video) - 1
    np.testing.assert_array_equal(reused, every)


def test_the_moved_mesh_follows_a_whole_pixel_shift(analyzer, astronaut):
    """StillMouth alone: the same picture a few pixels further gives the mesh moved by as much;
    another picture of the mouth gives None, and so does a crop without the face."""
    follower = MeshFollower()
    (face,) = analyzer.analyze(astronaut)
    mesh = follower.follow(astronaut, face.box)
    still = StillMouth()
    still.remember(astronaut, (0, 0), follower.window, mesh)
    moved = still.moved(_shifted(astronaut, 3.0, -2.0), (0, 0), mesh)
    assert moved is not None
    np.testing.assert_allclose(moved[:, :2], mesh[:, :2] + (3.0, -2.0), atol=0.1)
    np.testing.assert_allclose(moved[:, 2], mesh[:, 2], atol=0.01)
    opened = reanimate(astronaut, face.mesh, 1.0)
    assert still.moved(opened, (0, 0), mesh) is None
    x0, y0, _, _ = (int(v) for v in box_of(mesh))
    assert still.moved(astronaut[y0:, x0:], (x0, y0), mesh) is None


def test_grey_boxes_cut_from_one_conversion_are_the_boxes_converted(astronaut):
    """FrameGrey converts a box (and a margin) once and cuts the boxes inside it from that:
    the same grey pixels as converting each box alone; a box not all in the crop is None."""
    from still_mouth import FrameGrey, _grey

    crop, origin = astronaut[40:400, 60:460], (60, 40)
    greys = FrameGrey(crop, origin)
    for box in ((200, 150, 320, 300), (205, 152, 318, 305), (150, 100, 420, 380)):
        np.testing.assert_array_equal(greys.box(box), _grey(crop, origin, box))
    assert greys.box((50, 150, 320, 300)) is None  # left of the crop
    assert greys.box((200, 150, 320, 401)) is None  # below it


def _talking(analyzer, astronaut, n: int) -> list[np.ndarray]:
    """The astronaut panning right, her mouth opening and closing (the landmarker on every
    frame: no frame's mouth is the one before it)."""
    (face,) = analyzer.analyze(astronaut)
    openness = 0.5 - 0.5 * np.cos(np.arange(n) * 2 * np.pi / 8)
    return [
        _shifted(reanimate(astronaut, face.mesh, float(o)), 1.5 * i, 0.5 * i)
        for i, o in enumerate(openness)
    ]


def test_a_prefetched_frame_gets_the_mesh_tracking_it_alone_gives(analyzer, astronaut):
    """lipsync starts tracking the next frame while it draws one (FaceTracker.prefetch: the
    landmarker works in MediaPipe's threads): every mesh and score is the one tracking frame
    by frame gives, bit for bit, through a talking, panning face (past a detection check),
    frames without it (the follower restarted) and its return."""
    blank = np.full_like(astronaut, 128)
    video = _talking(analyzer, astronaut, REDETECT_EVERY + 4) + [blank] * 3
    video += [_shifted(astronaut, 2.0 * i, 0.0) for i in range(6)]
    follower = MeshFollower()
    alone = FaceTracker(analyzer, follower=follower)
    expected = [alone.mesh(i, frame) for i, frame in enumerate(video)]
    scores = [alone.score(i) for i in range(len(video))]
    ahead = FaceTracker(analyzer, follower=follower)
    started = 0
    for i, frame in enumerate(video):
        mesh = ahead.mesh(i, frame)
        if expected[i] is None:
            assert mesh is None, f"frame {i}"
        else:
            np.testing.assert_array_equal(mesh, expected[i], err_msg=f"frame {i}")
        assert ahead.score(i) == scores[i]
        if i + 1 < len(video):
            ahead.prefetch(i + 1, video[i + 1])
            started += follower.busy
    assert [m is None for m in expected].count(True) == 3
    # the talking frames each started the landmarker ahead (not the first, nor the blanks)
    assert started >= REDETECT_EVERY + 2


def test_a_frame_left_in_the_landmarker_does_not_change_the_next_video(analyzer, astronaut):
    """A sequence that ends (or is cancelled) with its next frame started leaves it in the
    shared follower's landmarker: the next video's tracker discards it, and tracks as on a
    fresh follower; a frame started and not asked for next is finished first."""
    video = _talking(analyzer, astronaut, 6)
    fresh = FaceTracker(analyzer, follower=MeshFollower())
    expected = [fresh.mesh(i, frame) for i, frame in enumerate(video)]
    follower = MeshFollower()
    first = FaceTracker(analyzer, follower=follower)
    first.mesh(0, video[0])
    first.prefetch(1, video[1])
    assert follower.busy
    assert first.mesh(3, video[3]) is not None  # 1 is finished first, 3 starts a new stretch
    assert not follower.busy and first.mesh(1, video[1]) is not None
    first.prefetch(4, video[4])
    assert follower.busy  # ... and the sequence ends here
    second = FaceTracker(analyzer, follower=follower)
    for i, frame in enumerate(video):
        np.testing.assert_array_equal(second.mesh(i, frame), expected[i], err_msg=f"frame {i}")


def test_two_videos_tracked_in_turns_on_one_follower_both_go_on(analyzer, astronaut):
    """A model instance runs one sequence at a time (Triton's direct sequence batcher), but
    should two take turns on its follower, a frame one started is dropped by the other's, and
    the first tracker finds its face again (a new analysis) rather than failing."""
    video = _talking(analyzer, astronaut, 6)
    follower = MeshFollower()
    one, two = FaceTracker(analyzer, follower=follower), FaceTracker(analyzer, follower=follower)
    for i, frame in enumerate(video):
        assert one.mesh(i, frame) is not None, f"one, frame {i}"
        if i + 1 < len(video):
            one.prefetch(i + 1, video[i + 1])
        assert two.mesh(i, frame) is not None, f"two, frame {i}"
        if i + 1 < len(video):
            two.prefetch(i + 1, video[i + 1])


def test_a_frame_submitted_over_another_drops_it(analyzer, astronaut):
    """The follower's two halves: a second submit before the first frame is collected drops
    that one (its collect gives None) and serves the second."""
    (face,) = analyzer.analyze(astronaut)
    follower = MeshFollower()
    first = follower.submit(astronaut, face.box)
    second = follower.submit(_shifted(astronaut, 2.0, 0.0), face.box)
    assert follower.collect(first) is None
    mesh = follower.collect(second)
    assert mesh is not None
    assert _centre(mesh)[0] == pytest.approx(_centre(face.mesh)[0] + 2.0, abs=1.5)
    assert not follower.busy and follower.collect(second) is None
