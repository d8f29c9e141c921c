"""face_landmarks/1/face_mesh.py: MediaPipe detection + the 478-point mesh, and the 68 iBUG
points taken from it (checked against dlib's predictor, the quality benchmark's reference)."""

import cv2
import numpy as np
import pytest
from face_mesh import DLIB68, N_MESH, Face, FaceAnalyzer


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def portrait_face(analyzer, portrait) -> Face:
    faces = analyzer.analyze(portrait)
    assert len(faces) == 1
    return faces[0]


def test_finds_the_portrait_face(analyzer, portrait, portrait_face):
    face = portrait_face
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= portrait.shape[1] and 0 <= y0 < y1 <= portrait.shape[0]
    assert face.score > 0.5
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    mouth = face.landmarks[48:68]
    assert np.all((mouth[:, 0] > x0) & (mouth[:, 0] < x1))
    assert np.all((mouth[:, 1] > (y0 + y1) / 2) & (mouth[:, 1] < y1))
    # Sanity of the dlib order: eyes above the nose tip above the mouth above the chin.
    assert face.landmarks[36:48, 1].mean() < face.landmarks[30, 1] < mouth[:, 1].mean()
    assert mouth[:, 1].mean() < face.landmarks[8, 1]


def _non_faces() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    gradient = np.broadcast_to(ramp[None, :, None], (480, 640, 3)).astype(np.uint8)
    images = {
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "flat": np.full((480, 640, 3), (120, 160, 200), np.uint8),
        "gradient": np.ascontiguousarray(gradient),
        "small_noise": rng.integers(0, 256, (120, 90, 3), dtype=np.uint8),
    }
    try:
        import skimage.data

        images["coffee"] = skimage.data.coffee()
        images["rocket"] = skimage.data.rocket()
        images["chelsea"] = skimage.data.chelsea()
    except ImportError:
        pass
    return images


@pytest.mark.parametrize("name", list(_non_faces()))
def test_no_face_in_non_face_images(analyzer, name):
    assert analyzer.analyze(_non_faces()[name]) == []


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_scale_invariance(analyzer, portrait, portrait_face, scale):
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    scaled = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=interp)
    faces = analyzer.analyze(scaled)
    assert len(faces) == 1
    # Compare in the original image's pixel units.
    err = np.abs(faces[0].landmarks / scale - portrait_face.landmarks)
    assert err.mean() < 2.0 and err.max() < 6.0
    # the box follows the 68 points: allow 15% of the face size (scaling changes the picture).
    box = np.array(faces[0].box) / scale
    ref = np.array(portrait_face.box)
    assert np.abs(box - ref).max() < 0.15 * (ref[2] - ref[0])


def test_largest_face_first_and_tiny_input(analyzer, portrait):
    # Two copies of the face at different sizes side by side: the bigger one comes first.
    crop = portrait[40:220, 130:320]
    big = cv2.resize(crop, None, fx=1.5, fy=1.5)
    canvas = np.full((big.shape[0], big.shape[1] + crop.shape[1], 3), 200, np.uint8)
    canvas[:, : big.shape[1]] = big
    canvas[: crop.shape[0], big.shape[1] :] = crop
    faces = analyzer.analyze(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[0] < big.shape[1] <= faces[1].box[0]
    assert analyzer.analyze(np.zeros((8, 8, 3), np.uint8)) == []


def test_a_detector_confirms_a_face_where_it_is_and_nowhere_else(analyzer, portrait, portrait_face):
    """``confirms`` (the tracker's periodic check that its face is still there): yes for the
    face's box, a small face in a large picture included; no for a box beside the face and on
    a picture without one."""
    assert analyzer.confirms(portrait, portrait_face.box)
    x0, y0, x1, y1 = portrait_face.box
    side = x1 - x0
    beside = (x1 + side, y0, x1 + 2 * side, y1)  # the background to its right
    assert beside[2] <= portrait.shape[1]
    assert not analyzer.confirms(portrait, beside)
    assert not analyzer.confirms(np.full_like(portrait, 120), portrait_face.box)
    small = cv2.resize(portrait, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[500 : 500 + small.shape[0], 900 : 900 + small.shape[1]] = small
    box = tuple(np.array(portrait_face.box) * 0.25 + (900, 500, 900, 500))
    assert analyzer.confirms(canvas, box)


def test_the_whole_image_answers_where_the_close_look_sees_no_face(
    analyzer, portrait, portrait_face
):
    """The short-range look around the box comes first; where it sees nothing, the
    full-range detector on the whole image decides (here: it finds the face)."""

    class Blind:
        def process(self, image):
            return type("Result", (), {"detections": None})()

    close = analyzer._close_detector
    analyzer._close_detector = Blind()
    try:
        assert analyzer.confirms(portrait, portrait_face.box)
    finally:
        analyzer._close_detector = close


def test_rejects_bad_input(analyzer):
    with pytest.raises(ValueError):
        analyzer.analyze(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        analyzer.analyze(np.zeros((64, 64, 3), np.float32))


def test_the_mesh_has_lips_and_irises_where_the_face_is(portrait_face):
    mesh = portrait_face.mesh
    assert mesh.shape == (N_MESH, 3) and mesh.dtype == np.float32
    np.testing.assert_array_equal(portrait_face.landmarks, mesh[DLIB68, :2])
    # Irises (468 and 473: the centres) lie between the corners of their eye.
    lm = portrait_face.landmarks
    for centre, corners in ((468, (36, 39)), (473, (42, 45))):
        xs = sorted(lm[list(corners), 0])
        assert xs[0] < mesh[centre, 0] < xs[1]
    # The upper lip's inner contour is above the lower lip's (a closed mouth: within 3 px).
    assert mesh[13, 1] <= mesh[14, 1] + 0.5
    # Depth: the nose tip is nearer the camera than the ears' side of the face.
    assert mesh[4, 2] < mesh[234, 2] and mesh[4, 2] < mesh[454, 2]


def test_the_68_points_agree_with_an_independent_predictor(portrait, portrait_face):
    """The iBUG points taken from the mesh match dlib's own (the scheme the renderers were
    written for) within a few percent of the eye distance on eyes, nose and lips."""
    from bench.quality import reference_landmarks as reference

    dlib_marks = reference.FaceAnalyzer().analyze(portrait)[0].landmarks
    eye_distance = np.linalg.norm(dlib_marks[36:42].mean(0) - dlib_marks[42:48].mean(0))
    error = np.linalg.norm(portrait_face.landmarks - dlib_marks, axis=1) / eye_distance
    assert error[27:48].mean() < 0.06  # nose and eyes
    assert error[48:68].mean() < 0.06  # lips
    assert error[17:27].mean() < 0.1  # brows
    assert error[0:17].mean() < 0.2  # the jaw lines differ by design (mesh oval vs jaw line)


def test_a_soft_upscaled_face_is_found(analyzer):
    """LFW's 25 px faces blown up 12x (the quality benchmark's case): soft, no fine detail;
    the full-range detector misses it, the short-range one does not."""
    from bench.quality.inputs import lfw_face

    faces = analyzer.analyze(np.ascontiguousarray(lfw_face()))
    assert len(faces) == 1
    x0, _, x1, _ = faces[0].box
    assert 150 < x1 - x0 < 350  # the face is ~300 px wide in the middle of 512


def test_landmarks_read_off_the_wire_are_the_fields_values(analyzer, portrait):
    """_landmark_array reads MediaPipe's landmarks from their serialised bytes: the same
    float32 values as reading each landmark's fields, and field by field again when a landmark
    carries more than x, y, z."""
    from face_mesh import _fitted, _landmark_array

    result = analyzer._mesher.process(_fitted(portrait))
    (landmarks,) = result.multi_face_landmarks
    fields = np.array([(p.x, p.y, p.z) for p in landmarks.landmark], np.float64)
    read = _landmark_array(landmarks)
    assert read.shape == (N_MESH, 3) and read.dtype == np.float64
    np.testing.assert_array_equal(read, fields)
    landmarks.landmark[7].visibility = 0.5  # 5 bytes more on the wire: not the fast layout
    np.testing.assert_array_equal(_landmark_array(landmarks), fields)


def test_the_landmarker_in_two_halves_gives_process_s_landmarks(portrait):
    """MeshFollower's landmarker runs in two halves (submit, then result: lipsync draws a frame
    in between): the same landmarks as MediaPipe's process, bit for bit, though the caller's
    array changes right after submit (the graph works on its own copy); none on a blank."""
    from face_mesh import _AsyncFaceMesh, _fitted, _landmark_array, mp_mesh

    settings = {"static_image_mode": True, "max_num_faces": 1, "refine_landmarks": True}
    halves, whole = _AsyncFaceMesh(**settings), mp_mesh.FaceMesh(**settings)
    image = _fitted(portrait).copy()
    (expected,) = whole.process(image.copy()).multi_face_landmarks
    halves.submit(image)
    image[...] = 0
    (found,) = halves.result()
    np.testing.assert_array_equal(_landmark_array(found), _landmark_array(expected))
    halves.submit(image)
    assert not halves.result()
    halves.close()
    whole.close()
