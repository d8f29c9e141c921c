"""The visual input's checks and face search (pipeline/visual.py), with stub backends and, for
the smallest face, the real face detector of the face_landmarks model (MediaPipe, in process)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from a2v_server.domain import GenerateSpec
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.inference.backend import Face
from a2v_server.pipeline import faces as face_search
from a2v_server.pipeline import visual
from a2v_server.pipeline.budget import check_pixel_rate
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

FACE_MODEL = Path(__file__).resolve().parents[2] / "model_repository/face_landmarks/1"


def _face(box, score=1.0) -> Face:
    x0, y0, x1, y1 = box
    return Face(box, score, np.tile(np.float32([[(x0 + x1) / 2, (y0 + y1) / 2]]), (68, 1)))


class Stub:
    """A backend whose faces are given per call (by the analysed image's shape and place)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.shapes: list[tuple[int, ...]] = []

    async def analyze_faces(self, image):
        self.shapes.append(image.shape)
        return self.answer(image)


def _spec(**changes) -> GenerateSpec:
    fields = dict(
        model="talking_avatar",
        request_id="",
        seed=0,
        fps=25.0,
        aspect=None,
        short_side=720,
        size=None,
        fit="crop",
        prompt="",
        trim_start=0.0,
        trim_end=None,
    )
    fields.update(changes)
    return GenerateSpec(**fields)  # type: ignore[arg-type]


# --- tiles ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("w", "h", "count"), [(4000, 3000, 12), (1280, 960, 1), (1300, 400, 2)])
def test_tiles_cover_the_picture_with_overlap(w, h, count):
    tiles = face_search.tiles(w, h)
    assert len(tiles) == count
    covered = np.zeros((h, w), bool)
    for x, y, tw, th in tiles:
        assert tw <= face_search.ANALYSIS_SIDE and th <= face_search.ANALYSIS_SIDE
        assert x + tw <= w and y + th <= h
        covered[y : y + th, x : x + tw] = True
    assert covered.all()
    xs = sorted({x for x, *_ in tiles})
    tw = tiles[0][2]
    assert all(b - a <= tw - face_search.TILE_OVERLAP for a, b in itertools.pairwise(xs))


def test_merge_keeps_one_of_each_face_and_drops_weak_ones():
    faces = [
        _face((100, 100, 200, 200), 1.0),
        _face((102, 98, 201, 203), 1.5),  # the same face, from the overlapping tile
        _face((150, 110, 200, 190), 0.8),  # a part of it, cut by a tile's edge
        _face((1000, 1000, 1060, 1060), 1.2),
        _face((2000, 2000, 2300, 2300), 0.2),  # weak next to clear faces: a false positive
    ]
    merged = face_search.merge_faces(faces)
    assert [f.box for f in merged] == [(102, 98, 201, 203), (1000, 1000, 1060, 1060)]


# --- the face search -----------------------------------------------------------------------------
async def test_tiled_pass_finds_a_face_only_one_tile_holds():
    image = np.zeros((3000, 4000, 3), np.uint8)
    image[2100:2180, 3300:3380] = 255  # the "face": white, 80 px

    def answer(picture):  # a face only where the white square is whole and >= 60 px
        ys, xs = np.nonzero(picture[..., 0])
        if not len(xs) or xs.max() - xs.min() < 59 or picture.shape[1] < 1000:
            return []
        h, w = picture.shape[:2]
        if xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1:
            return []  # cut by the tile's edge
        return [_face((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))]

    backend = Stub(answer)
    clock = StageClock()
    faces = await face_search.find_faces(backend, image, clock, tiled=True)
    assert backend.shapes[0] == (960, 1280, 3)  # the downscaled pass first
    assert backend.shapes[1:] == [(1280, 1280, 3)] * 12
    assert len(faces) == 1
    assert faces[0].box == pytest.approx((3300, 2100, 3380, 2180))
    assert faces[0].landmarks[0] == pytest.approx((3340, 2140))
    assert clock.inference > 0


async def test_no_tiles_when_the_downscaled_pass_finds_a_face_or_the_picture_is_small():
    found = Stub(lambda p: [_face((10, 10, 100, 100))])
    big = np.zeros((3000, 4000, 3), np.uint8)
    faces = await face_search.find_faces(found, big, StageClock(), tiled=True)
    assert len(found.shapes) == 1
    assert faces[0].box == pytest.approx((10 / 0.32, 10 / 0.32, 100 / 0.32, 100 / 0.32))
    nothing = Stub(lambda p: [])
    await face_search.find_faces(
        nothing, np.zeros((960, 1280, 3), np.uint8), StageClock(), tiled=True
    )
    await face_search.find_faces(nothing, big, StageClock())
    assert len(nothing.shapes) == 2  # one each: small picture; video frames are not tiled


# --- picture size and shape ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("w", "h", "phrase"),
    [
        (16, 4000, "the portrait is 16x4000 pixels, 250 times as tall as it is wide"),
        (5000, 1000, "the limit is 4:1: crop it around the face (to at most 4000x1000)"),
        (15, 15, "too small to hold a face"),
    ],
)
def test_picture_size_and_shape_are_checked_before_the_model(w, h, phrase):
    with pytest.raises(InvalidInput) as info:
        visual._check_picture_size(np.zeros((h, w, 3), np.uint8), "portrait", "image")
    assert phrase in info.value.message
    assert "IMAGE" not in info.value.message and info.value.field == "image"


def test_pictures_within_the_shape_limit_pass():
    for w, h in [(4000, 1000), (16, 64), (1000, 4000)]:
        visual._check_picture_size(np.zeros((h, w, 3), np.uint8), "video", "video")


# --- output pixel rate ---------------------------------------------------------------------------
def test_pixel_rate_refused_with_the_numbers_and_the_fix():
    spec = _spec(size=(3840, 2160), short_side=None)
    with pytest.raises(ResourceExhausted) as info:
        check_pixel_rate((3840, 2160), 25.0, spec, (64, 64), Settings(), video=True)
    assert info.value.message == (
        "3840x2160 at 25 fps (the video's frame rate) is 207 Mpx/s of output, over the limit "
        "of 124 Mpx/s: ask for 1080p or less, or send the video at 15 fps or less"
    )
    with pytest.raises(ResourceExhausted) as info:
        check_pixel_rate((3840, 2160), 25.0, spec, (64, 64), Settings(), video=False)
    assert info.value.message.endswith("ask for 1080p or less, or for at most 15 fps at 3840x2160")


def test_pixel_rate_suggests_the_largest_preset_of_the_same_shape():
    settings = Settings(max_output_pixel_rate=1280 * 720 * 30)
    spec = _spec(aspect="16:9", short_side=1080)
    with pytest.raises(ResourceExhausted) as info:
        check_pixel_rate((1920, 1080), 30.0, spec, (500, 500), settings, video=False)
    assert "1920x1080 at 30 fps is 62.2 Mpx/s of output, over the limit of 27.6 Mpx/s" in (
        info.value.message
    )
    assert "ask for 720p or less" in info.value.message
    check_pixel_rate((1920, 1080), 60.0, spec, (500, 500), Settings(), video=False)


# --- the real detector: the smallest face it finds -----------------------------------------------
@pytest.fixture(scope="module")
def detector():
    skimage_data = pytest.importorskip("skimage.data")
    if str(FACE_MODEL) not in sys.path:
        sys.path.insert(0, str(FACE_MODEL))
    from face_mesh import FaceAnalyzer

    analyzer = FaceAnalyzer()  # as the face_landmarks model builds it

    class InProcess:
        calls = 0

        async def analyze_faces(self, image):
            self.calls += 1
            return [Face(f.box, f.score, f.landmarks) for f in analyzer.analyze(image)]

    head = skimage_data.astronaut()[20:240, 120:330]  # the face's box: 88 px wide
    return InProcess(), head


def _small_face_picture(head, face_px: int, size: tuple[int, int], centre) -> np.ndarray:
    w, h = size
    picture = np.full((h, w, 3), 128, np.uint8)
    s = face_px / 88
    small = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    x, y = int(centre[0] - 103 * s), int(centre[1] - 107 * s)
    picture[y : y + small.shape[0], x : x + small.shape[1]] = small
    return picture


async def test_the_smallest_face_stated_is_what_the_detector_finds(detector):
    backend, head = detector
    # One analysis of ANALYSIS_SIDE (what one tile is): SMALLEST_FACE found, 14 px not.
    for face_px, found in ((face_search.SMALLEST_FACE, True), (14, False)):
        picture = _small_face_picture(head, face_px, (1280, 1280), (700, 600))
        faces = await face_search.find_faces(backend, picture, StageClock(), tiled=True)
        assert bool(faces) is found, face_px


async def test_a_small_face_in_a_large_photo_is_found_by_the_tiled_pass(detector):
    backend, head = detector
    picture = _small_face_picture(head, face_search.SMALLEST_FACE, (4000, 3000), (2950, 1010))
    backend.calls = 0
    faces = await face_search.find_faces(backend, picture, StageClock(), tiled=True)
    assert backend.calls == 13  # the downscaled pass found nothing
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert x0 < 2950 < x1 and y0 < 1010 < y1
    assert 0.8 * face_search.SMALLEST_FACE < x1 - x0 < 1.4 * face_search.SMALLEST_FACE


# --- the face mesh reaches the avatar in output pixels ------------------------------------------
async def test_the_face_mesh_is_fitted_with_the_portrait_like_the_landmarks():
    # a 2560x1440 photo: analysed at half size, then cropped and scaled to 480x480 around the face
    image = np.zeros((1440, 2560, 3), np.uint8)
    image[500:900, 1700:2000] = 200

    def answer(picture):
        f = picture.shape[1] / 2560  # the analysed picture's scale
        marks = np.float32([[1700, 500], [2000, 900]] * 34) * f
        mesh = np.zeros((478, 3), np.float32)
        mesh[:, :2] = np.float32([1850, 700]) * f
        mesh[0] = (1700 * f, 500 * f, -100 * f)  # the nose tip: 100 px nearer than the face
        mesh[1] = (2000 * f, 900 * f, 0.0)
        return [Face((1700 * f, 500 * f, 2000 * f, 900 * f), 1.0, marks, mesh)]

    data = cv2.imencode(".png", image)[1].tobytes()
    out = await visual.prepare_portrait(
        data, _spec(aspect="1:1", short_side=480), Stub(answer), Settings(), StageClock()
    )
    assert out.mesh is not None and out.mesh.shape == (478, 3)
    # the mesh's corners are where the landmarks (and the face in the fitted picture) are
    assert out.mesh[0, :2] == pytest.approx(out.landmarks[0], abs=0.01)
    assert out.mesh[1, :2] == pytest.approx(out.landmarks[1], abs=0.01)
    y, x = (out.mesh[0, :2] + out.mesh[1, :2])[::-1] / 2
    assert out.portrait[int(y), int(x)].mean() > 150  # the bright "face" is under the mesh
    # depth is scaled as x: the nose stays as far in front, relative to the face's width
    width = out.mesh[1, 0] - out.mesh[0, 0]
    assert out.mesh[0, 2] == pytest.approx(-100 / 300 * width, rel=1e-3)


async def test_a_face_model_without_a_mesh_gives_a_portrait_without_one():
    data = cv2.imencode(".png", np.full((720, 720, 3), 128, np.uint8))[1].tobytes()
    out = await visual.prepare_portrait(
        data,
        _spec(),
        Stub(lambda p: [_face((200, 200, 500, 500))]),
        Settings(),
        StageClock(),
    )
    assert out.mesh is None and out.landmarks is not None


def test_a_source_scaled_to_the_budget_keeps_its_framing_around_a_small_face():
    """Lipsync's default over the pixel budget (a 4K phone video, a 1080p clip) is the whole
    source scaled, whatever the face: a crop would zoom in on a small one (a wide shot) and
    change the framing the user gave."""
    from a2v_server.pipeline.visual import _layout

    small_face = (1880.0, 1000.0, 1960.0, 1090.0)  # 80 px wide in a 3840x2160 frame
    spec = _spec(model="lipsync", short_side=None)
    whole, _ = _layout(spec, (3840, 2160), (1920, 1080), small_face, whole=True)
    assert (whole.scale, whole.dx, whole.dy) == (0.5, 0.0, 0.0)
    cropped, _ = _layout(spec, (3840, 2160), (1920, 1080), small_face)
    assert cropped.scale > 0.5  # what the crop does with it
