"""Unit tests for the landmark-driven mouth renderer (on the real sample portrait)."""

import numpy as np
import pytest
from grid_splines import GridSplines, tps_kernel32
from mouth_render import MouthRenderer
from shared import tps_weights


@pytest.fixture(scope="module")
def renderer(portrait, landmarks) -> MouthRenderer:
    return MouthRenderer(portrait, landmarks)


def luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def mouth_box(lm: np.ndarray) -> tuple[int, int, int, int]:
    """From the mouth corners' x and the upper lip's top down to the chin."""
    return int(lm[48, 0]), int(lm[50:53, 1].min()), int(lm[54, 0]) + 1, int(lm[8, 1])


def test_zero_is_identity_and_shape(renderer, portrait):
    out = renderer.render(0.0)
    assert out.dtype == np.uint8 and out.shape == portrait.shape
    assert np.array_equal(out, portrait)
    assert out is not portrait  # a new array every time
    assert np.array_equal(renderer.render(-0.5), portrait)
    assert np.array_equal(renderer.render(float("nan")), portrait)
    assert np.array_equal(renderer.render(1.7), renderer.render(1.0))


def test_open_mouth_changes_and_darkens(renderer, portrait, landmarks):
    x0, y0, x1, y1 = mouth_box(landmarks)
    before = portrait[y0:y1, x0:x1].astype(np.float32)
    after = renderer.render(1.0)[y0:y1, x0:x1].astype(np.float32)
    assert np.abs(after - before).mean() > 25
    # Centre of the opened mouth: between the inner lips, extended downward.
    cx0, cx1 = int(landmarks[61, 0]), int(landmarks[63, 0]) + 1
    cy0 = int(landmarks[62, 1]) + 2
    cy1 = int(landmarks[66, 1] + 0.25 * (landmarks[54, 0] - landmarks[48, 0]))
    dark_before = luma(portrait[cy0:cy1, cx0:cx1]).mean()
    dark_after = luma(renderer.render(1.0)[cy0:cy1, cx0:cx1]).mean()
    assert dark_after < dark_before - 60


def test_only_roi_changes(renderer, portrait, landmarks):
    x0, y0, x1, y1 = renderer.roi
    assert 0 <= x0 < x1 <= portrait.shape[1] and 0 <= y0 < y1 <= portrait.shape[0]
    outside = np.ones(portrait.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    nose_tip_row = int(np.floor(landmarks[30, 1]))
    for a in (0.1, 0.33, 0.5, 0.77, 1.0):
        out = renderer.render(a)
        assert np.array_equal(out[outside], portrait[outside])
        assert np.array_equal(out[:nose_tip_row], portrait[:nose_tip_row])


def test_dark_area_grows_with_openness(renderer, landmarks):
    x0, y0, x1, y1 = mouth_box(landmarks)
    areas = [int((luma(renderer.render(a)[y0:y1, x0:x1]) < 70).sum()) for a in (0.25, 0.5, 1.0)]
    assert areas[0] < areas[1] < areas[2], areas
    assert areas[0] > 0


def test_motion_is_continuous(renderer, landmarks):
    """Neighbouring openness values give neighbouring images (no popping between the
    precomputed openness levels)."""
    x0, y0, x1, y1 = renderer.roi
    prev = renderer.render(0.30).astype(np.float32)
    for a in np.arange(0.31, 0.45, 0.01):
        cur = renderer.render(float(a)).astype(np.float32)
        assert np.abs(cur - prev)[y0:y1, x0:x1].mean() < 2.0
        prev = cur


def test_rejects_bad_input(portrait, landmarks):
    with pytest.raises(ValueError):
        MouthRenderer(portrait.astype(np.float32), landmarks)
    with pytest.raises(ValueError):
        MouthRenderer(portrait, landmarks + 5000)


def test_shared_anchor_kernels_give_the_spline_exactly():
    """The setup shortcut (anchor kernel columns computed once) must be the plain thin-plate
    spline, number for number, and must refuse centres that do not end with the anchors."""
    rng = np.random.default_rng(3)
    grid = rng.uniform(0, 100, (500, 2))
    anchors = rng.uniform(0, 100, (30, 2))
    splines = GridSplines(grid, anchors)
    for _ in range(3):
        centres = np.vstack([rng.uniform(0, 100, (12, 2)), anchors])
        values = rng.normal(size=(42, 2))
        weights = tps_weights(centres, values)
        plain = (
            tps_kernel32(grid.astype(np.float32), centres.astype(np.float32))
            @ weights[:42].astype(np.float32)
            + weights[42]
            + grid @ weights[43:]
        )
        assert np.array_equal(splines.eval(weights, centres), plain)
        # and it is the interpolating spline: its values at its own centres
        at_centres = GridSplines(centres, anchors).eval(weights, centres)
        assert np.allclose(at_centres, values, atol=0.01)
    moved = np.vstack([rng.uniform(0, 100, (12, 2)), anchors + 1.0])
    with pytest.raises(ValueError, match="static"):
        splines.eval(tps_weights(moved, np.zeros((42, 2))), moved)


def test_fields_made_on_demand_are_the_same_in_any_order(portrait, landmarks):
    """The warp fields are made when a frame first needs them: two renderers of one portrait
    that meet the poses in opposite orders draw the same frames, pixel for pixel."""
    poses = [(a, (s, r, p, f)) for a in (0.0, 0.3, 0.7, 1.0) for s, r, p, f in _SHAPES]
    forward, backward = MouthRenderer(portrait, landmarks), MouthRenderer(portrait, landmarks)
    frames = [forward.render(a, shapes) for a, shapes in poses]
    for (a, shapes), frame in reversed(list(zip(poses, frames, strict=True))):
        assert np.array_equal(backward.render(a, shapes), frame)


_SHAPES = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1.2, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (1, 1, 1, 1)]


# --- extreme shapes: the map never folds, the teeth keep their size ---------------------------
def _jacobian_det(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    dxy, dxx = np.gradient(map_x.astype(np.float64))
    dyy, dyx = np.gradient(map_y.astype(np.float64))
    return dxx * dyy - dxy * dyx


_EXTREMES = [
    (a, shapes)
    for a in (0.0, 0.5, 1.0)
    for shapes in (
        (1.5, 0, 0, 0),
        (0, 1.5, 0, 0),
        (0, 0, 1.5, 0),
        (0, 0, 0, 1.5),
        (1.5, 1.5, 0, 0),
        (0, 1.5, 1.5, 0),
        (1.5, 1.5, 1.5, 1.5),
    )
]


@pytest.fixture(scope="module")
def tilted(portrait) -> tuple[np.ndarray, np.ndarray]:
    """The portrait turned 20 degrees, and its landmarks found again."""
    import cv2
    from face_mesh import FaceAnalyzer

    h, w = portrait.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), -20.0, 1.0)
    image = cv2.warpAffine(portrait, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    (face,) = FaceAnalyzer().analyze(image)
    return image, face.landmarks


def test_the_map_never_folds(renderer, portrait, landmarks, tilted):
    """Every basis pose at its strongest, alone and combined, at rest and wide open, upright
    and tilted: the backward map keeps a positive Jacobian determinant everywhere (the TPS sum
    of a wide-open, rounded, pressed mouth folded before the guard: a mirrored pink blob)."""
    import cv2
    from mouth_render import MIN_DET

    for name, r in (("upright", renderer), ("tilted", MouthRenderer(*tilted))):
        for a, shapes in _EXTREMES:
            pose = r.pose(a, np.array(shapes, float))
            if pose is None:
                continue
            det = _jacobian_det(pose.map_x, pose.map_y)
            # the opening is painted over (its map is degenerate when a shut mouth opens):
            # leave it and two grid cells around it out, and np.gradient's border
            hidden = cv2.dilate(pose.covered.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            seen = ~hidden
            seen[:1] = seen[-1:] = False
            seen[:, :1] = seen[:, -1:] = False
            # bilinear upsampling of the coarse grid adds a little between its nodes
            assert det[seen].min() > MIN_DET - 0.1, (name, a, shapes)


def test_a_fold_is_caught_by_the_check():
    ys, xs = np.mgrid[0:40, 0:40].astype(np.float32)
    folded = xs.copy()
    folded[:, 10:20] = 30 - xs[:, 10:20]  # columns read mirrored
    assert _jacobian_det(folded, ys)[:, 12:18].max() < 0


def test_the_teeth_keep_their_size_when_the_lips_round(portrait):
    """The sample portrait smiles with its upper teeth showing (here at twice its size, so
    the gap is 14 px). Rounding the lips (O, U, W) narrows the opening around the teeth; the
    teeth themselves are neither squeezed nor moved: the middle of the upper teeth row stays
    the portrait's own pixels."""
    import cv2
    from face_mesh import FaceAnalyzer

    big = cv2.resize(portrait, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    (face,) = FaceAnalyzer().analyze(big)
    lm = face.landmarks
    renderer = MouthRenderer(big, lm)
    top, bottom = lm[62, 1], lm[66, 1]  # the inner lips' middles
    cx = int(lm[62, 0])
    x0, x1 = cx - 8, cx + 9  # the middle teeth
    # the upper half of the gap (one row short of its middle: the smile curves it)
    y0, y1 = int(np.ceil(top)) + 1, int((top + bottom) / 2) - 1
    assert y1 - y0 >= 4
    for a, rounding in ((0.3, 1.0), (0.5, 1.2), (0.8, 0.8)):
        out = renderer.render(a, np.array([0.0, rounding, 0.0, 0.0]))
        diff = np.abs(out[y0:y1, x0:x1].astype(int) - big[y0:y1, x0:x1])
        assert diff.mean() < 6, (a, rounding)


def test_pressed_lips_close_over_the_teeth(renderer, portrait, landmarks):
    """M/B/P on a portrait that smiles with its teeth showing: the lower lip slides up over the
    teeth (their bright pixels are gone from the gap), and the lips are the portrait's own
    (no flat painted lip shape: the colour spread between the lips stays like the lips')."""
    top, bottom = landmarks[62, 1], landmarks[66, 1]
    cx = int(landmarks[62, 0])
    rows = slice(int(np.ceil(top)) + 1, int(bottom))
    cols = slice(cx - 6, cx + 7)
    teeth = luma(portrait[rows, cols]).mean()
    pressed = renderer.render(0.0, np.array([0.0, 0.0, 1.0, 0.0]))
    lips = luma(portrait[int(bottom) + 2 : int(landmarks[57, 1]) - 1, cols])
    assert luma(pressed[rows, cols]).mean() < teeth - 25
    assert abs(luma(pressed[rows, cols]).mean() - lips.mean()) < 25
    assert luma(pressed[rows, cols]).std() > 0.3 * lips.std()  # texture, not a flat fill


def test_a_black_and_white_portrait_gets_a_grey_mouth():
    """A painted interior in the portrait's tone: LFW's grey face (mouth shut, so the interior
    and the teeth are painted) opens without a red mouth or white teeth of another photo."""
    from face_mesh import FaceAnalyzer

    from bench.quality.inputs import lfw_face

    grey = np.ascontiguousarray(lfw_face())
    (face,) = FaceAnalyzer().analyze(grey)
    lm = face.landmarks
    out = MouthRenderer(grey, lm).render(1.0).astype(np.int16)
    chroma = out.max(axis=2) - out.min(axis=2)
    assert chroma.max() <= 3  # grey in, grey out (JPEG-free: exact up to rounding)
    x0, y0, x1, y1 = mouth_box(lm)
    assert np.abs(out[y0:y1, x0:x1] - grey[y0:y1, x0:x1]).mean() > 5  # and it did open


def test_with_the_mesh_the_opening_follows_the_dense_inner_lips():
    """Given the face mesh, the opening is outlined by its 20 inner-lip points, moved with the
    mouth: at rest they are the mesh's own points; opened, the points the 68 share with the
    mesh (corners and middles) move exactly as the 68's inner lips do, the others between."""
    import cv2
    from face_mesh import DLIB68, FaceAnalyzer
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    (face,) = FaceAnalyzer().analyze(image)
    renderer = MouthRenderer(image, face.landmarks, face.mesh)
    dense = renderer._dense
    rest = dense.moved(np.zeros((8, 2)))
    np.testing.assert_allclose(rest, face.mesh[list(dense.OUTLINE), :2], atol=1e-4)
    disp = renderer._inner(1.0, np.zeros(4)) - renderer._inner_src
    opened = dense.moved(disp)
    for row, point in enumerate(DLIB68[60:68]):
        if point in dense.OUTLINE:
            k = dense.OUTLINE.index(point)
            np.testing.assert_allclose(opened[k] - rest[k], disp[row], atol=1e-6)
    # the lower edge moved down, the upper edge barely: the outline opened
    lower = opened[dense.UPPER :, 1] - rest[dense.UPPER :, 1]
    assert lower.mean() > 0.2 * (face.landmarks[54, 0] - face.landmarks[48, 0])
    # and the render paints inside it: darker there than the shut photo
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(opened).astype(np.int32)], 1)
    out = renderer.render(1.0)
    assert luma(out)[inside > 0].mean() < luma(image)[inside > 0].mean() - 25  # teeth band too
