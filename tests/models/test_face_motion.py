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


# --- with the face mesh: blinks on the dense eye contours, over the iris -------------------------
@pytest.fixture(scope="module")
def face720(portrait):
    """The sample portrait fitted to 720x720 (as the server fits it), analysed like the server
    does: the picture, its 68 landmarks and its 478-point mesh."""
    import cv2
    from face_mesh import FaceAnalyzer

    image = cv2.resize(portrait, (720, 720), interpolation=cv2.INTER_CUBIC)
    found = FaceAnalyzer().analyze(image)[0]
    return image, found.landmarks, found.mesh


def _iris(mesh, centre):
    c = mesh[centre, :2]
    return c, float(np.linalg.norm(mesh[centre + 1 : centre + 5, :2] - c, axis=1).mean())


def test_mesh_blink_closes_the_lids_over_the_iris_with_skin(face720):
    image, landmarks, mesh = face720
    face = FaceMotion(image.shape, landmarks, mesh)
    assert np.array_equal(face.apply(image.copy(), 0.0, 0.0, np.zeros(3)), image)
    closed = face.apply(image.copy(), 1.0, 0.0, np.zeros(3)).astype(float)
    half = face.apply(image.copy(), 0.5, 0.0, np.zeros(3)).astype(float)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    for centre in (468, 473):  # the subject's right eye (image left), then the left one
        c, r = _iris(mesh, centre)
        inside = np.hypot(xx - c[0], yy - c[1]) < 0.7 * r
        skin_box = (np.abs(xx - c[0]) < r) & (yy > c[1] - 3.2 * r) & (yy < c[1] - 2.2 * r)
        iris = image[inside].astype(float).mean(0)
        skin = image[skin_box].astype(float).mean(0)
        contrast = np.linalg.norm(skin - iris)
        now = closed[inside].mean(0)
        # at blink 1 the iris is covered by skin-coloured lid, not a dark smear of the eye
        assert np.linalg.norm(now - skin) < 0.35 * contrast, (centre, now, skin, iris)
        assert np.linalg.norm(now - iris) > 0.6 * contrast, (centre, now, skin, iris)
        # half way the lid covers the iris's top and leaves its bottom as it was
        top = inside & (yy < c[1] - 0.3 * r)
        bottom = inside & (yy > c[1] + 0.3 * r)
        assert np.abs(half[top] - image[top]).mean() > 30
        assert np.abs(half[bottom] - image[bottom]).mean() < 2
    # nothing below the eyes changes (the lids close down to the lower lid, not past it)
    below = int(mesh[[145, 374], 1].max() + 2 * r)
    assert np.array_equal(closed[below:].astype(np.uint8), image[below:])


def test_mesh_and_no_mesh_blink_within_the_eyes_only(face720):
    image, landmarks, mesh = face720
    for with_mesh in (None, mesh):
        face = FaceMotion(image.shape, landmarks, with_mesh)
        closed = face.apply(image.copy(), 1.0, 0.0, np.zeros(3))
        ys, xs = np.nonzero(np.any(closed != image, axis=2))
        eyes = landmarks[36:48]
        width = eyes[:, 0].max() - eyes[:, 0].min()
        assert xs.min() >= eyes[:, 0].min() - 0.3 * width
        assert xs.max() <= eyes[:, 0].max() + 0.3 * width
        assert ys.max() <= eyes[:, 1].max() + 0.2 * width


# --- with the face mesh: the head turns in 3D about the neck --------------------------------------
@pytest.fixture(scope="module")
def analyzer():
    from face_mesh import FaceAnalyzer

    return FaceAnalyzer()


def _moved(analyzer, image, out):
    """Per mesh point, (dx, dy) of the face in ``out`` against ``image`` (measured by the face
    model, as a viewer would see it)."""
    return analyzer.analyze(out)[0].mesh[:, :2] - analyzer.analyze(image)[0].mesh[:, :2]


@pytest.mark.parametrize("yaw", [6.0, -6.0])
def test_mesh_yaw_turns_the_head_with_depth_and_the_mouth_with_it(face720, analyzer, yaw):
    image, landmarks, mesh = face720
    face = FaceMotion(image.shape, landmarks, mesh)
    out = face.apply(image.copy(), 0.0, 0.0, np.array([yaw, 0.0, 0.0]))
    d = _moved(analyzer, image, out)
    nose, outline, mouth = d[4, 0], (d[234, 0] + d[454, 0]) / 2, d[13, 0]
    # toward +x for yaw > 0, as before; the nose (nearer) more than the face's outline (a
    # rotation, not a shift), and the mouth turns with the face
    assert np.sign(nose) == np.sign(yaw) and abs(nose) > 5
    assert abs(nose) > 1.3 * abs(outline), (nose, outline)
    assert np.sign(mouth) == np.sign(yaw) and abs(mouth) > 0.6 * abs(nose), (mouth, nose)
    h, w = image.shape[:2]
    border = np.ones((h, w), bool)
    border[1:-1, 1:-1] = False
    assert np.array_equal(out[border], image[border])
    bottom = face.box[3]
    assert np.array_equal(out[bottom:], image[bottom:])  # shoulders and background below stay


@pytest.mark.parametrize("pitch", [5.0, -5.0])
def test_mesh_pitch_nods_the_whole_face(face720, analyzer, pitch):
    image, landmarks, mesh = face720
    face = FaceMotion(image.shape, landmarks, mesh)
    d = _moved(analyzer, image, face.apply(image.copy(), 0.0, 0.0, np.array([0.0, pitch, 0.0])))
    for point in (4, 13, 152):  # nose tip, mouth, chin: down for pitch > 0, as before
        assert np.sign(d[point, 1]) == np.sign(pitch) and abs(d[point, 1]) > 4, (point, d[point])


@pytest.mark.parametrize("pose", [(6, 5, 4), (-6, -5, -4), (6, -5, 4), (-6, 5, -4), (12, 10, 8)])
def test_mesh_head_warp_never_folds(face720, pose):
    image, landmarks, mesh = face720
    face = FaceMotion(image.shape, landmarks, mesh)
    dx, dy = face._head_field(np.array(pose, float))
    gx, gy = face._head_3d.step
    jxx, jxy = np.gradient(dx, gy, gx)[::-1]
    jyx, jyy = np.gradient(dy, gy, gx)[::-1]
    assert ((1 + jxx) * (1 + jyy) - jxy * jyx).min() > 0.4


@pytest.mark.parametrize("size", [(512, 512), (1080, 1920)])
def test_head_taper_is_the_full_size_formula(portrait, landmarks, size):
    """The head warp's taper is made from a row and a column: the same numbers as the
    smoothstep of each pixel's distance to the box's nearest edge."""
    canvas = np.zeros((*size, 3), np.uint8)
    canvas[: portrait.shape[0], : portrait.shape[1]] = portrait
    face = FaceMotion(canvas.shape, landmarks)
    x0, y0, x1, y1 = face._head_box
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dist = np.minimum.reduce([xs - x0, x1 - 1 - xs, ys - y0, y1 - 1 - ys])
    x = np.clip(dist / 4.0, 0.0, 1.0)
    assert np.array_equal(face._head_taper, (x * x * (3.0 - 2.0 * x)).astype(np.float32))
