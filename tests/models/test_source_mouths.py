"""lipsync/1/source_mouths.py: open mouths retrieved from the speaker's own video.

The speaker video is synthetic but made of a real face: the astronaut smiles with her teeth
showing; the warp (video_mouth.reanimate) closes her mouth by degrees, so the "video" goes from
shut lips to the real smile and back. Asked to open a shut frame's mouth, the warp alone paints
a dark interior; with the video's own open mouths in the library the output shows her teeth.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import source_mouths
from face_mesh import FaceAnalyzer
from skimage import data
from source_mouths import (
    RETRIEVED,
    WARP,
    MouthLibrary,
    SourceMouths,
    lip_points,
)
from video_mouth import INNER_LOWER, INNER_UPPER, OPEN_GAP, mouth_frame, reanimate


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut(analyzer) -> tuple[np.ndarray, np.ndarray]:
    image = np.ascontiguousarray(data.astronaut())
    (found,) = analyzer.analyze(image)
    return image, found.mesh


def _own_openness(mesh: np.ndarray) -> float:
    mf = mouth_frame(mesh)
    return mf.source_mid() / mf.width / OPEN_GAP


def _opening_video(analyzer, astronaut, frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shut lips opening to her real smile (teeth) over ``frames`` frames, each frame's mesh
    found again by the face model (as the tracker would)."""
    image, mesh = astronaut
    own = _own_openness(mesh)
    video = []
    for openness in np.linspace(0.0, own, frames):
        frame = image if openness == own else reanimate(image, mesh, openness)
        (found,) = analyzer.analyze(frame)
        video.append((frame, found.mesh))
    return video


@pytest.fixture(scope="module")
def talking(analyzer, astronaut) -> list[tuple[np.ndarray, np.ndarray]]:
    """A speaker video: shut lips opening to her real smile over 8 frames."""
    return _opening_video(analyzer, astronaut, 8)


@pytest.fixture(scope="module")
def talking_dense(analyzer, astronaut) -> list[tuple[np.ndarray, np.ndarray]]:
    """``talking`` over 16 frames: neighbouring mouths nearly alike, as in a real video."""
    return _opening_video(analyzer, astronaut, 16)


@pytest.fixture(scope="module")
def silent(analyzer, astronaut) -> list[tuple[np.ndarray, np.ndarray]]:
    """A speaker who never opens the mouth: her lips shut, nearly still."""
    image, mesh = astronaut
    video = []
    for openness in (0.0, 0.03, 0.06, 0.03, 0.0):
        frame = reanimate(image, mesh, openness)
        (found,) = analyzer.analyze(frame)
        video.append((frame, found.mesh))
    return video


def _library(video, cap: int = 64) -> SourceMouths:
    mouths = SourceMouths(cap=cap)
    for index, (frame, mesh) in enumerate(video):
        mouths.observe(index, frame, mesh)
    return mouths


def _interior(frame_mesh_openness) -> np.ndarray:
    """Mask of the output's inner mouth: between the upper inner lip and where the warp puts
    the lower one, shrunk by a pixel (no lip edge)."""
    frame, mesh, openness = frame_mesh_openness
    mf = mouth_frame(mesh)
    target = mf.target_mid(openness)
    pts = np.asarray(mesh, np.float64)[:, :2]
    lower = pts[list(INNER_LOWER)] + np.outer(
        mf.shift(mf.uv(pts[list(INNER_LOWER)])[0], target), mf.down
    )
    polygon = np.vstack([pts[list(INNER_UPPER)], lower[::-1]])
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0


def _teeth(pixels: np.ndarray) -> np.ndarray:
    """Bright, nearly colourless pixels (teeth), as a bool per pixel."""
    rgb = pixels.astype(np.float32)
    return (rgb.mean(-1) > 150) & (rgb.max(-1) - rgb.min(-1) < 70)


def test_a_wide_open_mouth_shows_the_speakers_own_teeth(talking):
    """A shut frame asked to open wide: the warp alone paints the interior dark; with the
    video's open mouths in the library the interior shows teeth, those of the frame retrieved."""
    mouths = _library(talking)
    shut, mesh = talking[0]
    openness = 0.7  # wider than any frame of the video shows (her smile is ~0.55)
    patch, path, entry = mouths.render(shut, mesh, openness)
    out = patch.onto(shut)
    warp_only = reanimate(shut, mesh, openness)
    inside = _interior((shut, mesh, openness))
    assert inside.sum() > 100  # the interior is a real area of the output
    assert path == RETRIEVED and entry is not None
    assert entry.mouth.gap > 0.12  # an open one: teeth showing in the source
    # the warp keeps the sliver of teeth the shut frame shows, paints a band of upper teeth
    # under the lip and the rest dark: mostly dark
    assert _teeth(warp_only[inside]).mean() < 0.4
    assert np.median(warp_only[inside].mean(-1)) < 90
    assert _teeth(out[inside]).mean() > 0.5  # teeth over most of the interior
    assert np.median(out[inside].mean(-1)) > 150
    # Those teeth are the retrieved frame's: the output's interior matches the source frame's
    # own interior, aligned at the upper lip (the upper teeth move with the skull).
    source, source_mesh = talking[entry.index]
    _, xs = np.nonzero(inside)
    top = np.round(mesh[13, 1]).astype(int)
    rows = slice(top + 1, top + 6)  # the upper teeth, below the upper lip's middle
    cols = slice(int(np.percentile(xs, 30)), int(np.percentile(xs, 70)))
    shift = int(round(source_mesh[13, 1] - mesh[13, 1]))
    got = out[rows, cols].astype(np.float32).mean(-1)
    want = source[rows.start + shift : rows.stop + shift, cols].astype(np.float32).mean(-1)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.6
    assert np.abs(got - want).mean() < 25


def test_without_an_open_mouth_in_the_video_the_warp_alone_is_used(silent):
    mouths = _library(silent)
    assert len(mouths.library) == 0  # nothing open enough to give an interior
    shut, mesh = silent[0]
    patch, path, entry = mouths.render(shut, mesh, 0.8)
    assert path == WARP and entry is None
    np.testing.assert_array_equal(patch.onto(shut), reanimate(shut, mesh, 0.8))


def test_the_start_of_a_video_uses_the_warp_until_an_open_mouth_was_seen(talking):
    mouths = SourceMouths()
    shut, mesh = talking[0]
    mouths.observe(0, shut, mesh)
    assert mouths.render(shut, mesh, 0.6)[1] == WARP
    for index in range(1, len(talking)):
        mouths.observe(index, *talking[index])
    assert mouths.render(shut, mesh, 0.6)[1] == RETRIEVED


def test_a_mouth_the_frame_already_shows_is_the_warps(talking):
    """Closing, or opening less than the frame already is: no retrieval (the warp keeps the
    frame's own mouth)."""
    mouths = _library(talking)
    frame, mesh = talking[-1]  # the smile itself
    for openness in (0.0, 0.3, _own_openness(mesh)):
        assert mouths.render(frame, mesh, openness)[1] == WARP


def test_slowly_changing_openings_keep_their_mouth(talking_dense, talking):
    """Openings drifting slowly (as speech does between syllables) on the shut frame: the
    chosen source mouth holds for several frames instead of hopping between the near-equal
    ones (a 16-frame video: neighbouring mouths nearly alike), yet a large change of opening
    does change it (the 8-frame one)."""
    sparse, talking = talking, talking_dense
    mouths = _library(talking)
    assert len(mouths.library) >= 4  # several open mouths to hop between
    shut, mesh = talking[0]
    used = []
    for openness in np.linspace(0.45, 0.6, 12):
        _, path, entry = mouths.render(shut, mesh, openness)
        assert path == RETRIEVED
        used.append(entry.index)
    switches = sum(a != b for a, b in itertools.pairwise(used))
    assert switches <= 2, used
    # Without the switching penalty the choice does hop (the test can see a flicker).
    free = _library(talking)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(source_mouths, "SWITCH", 0.0)
        hops = [free.render(shut, mesh, o)[2].index for o in np.linspace(0.45, 0.6, 12)]
    assert sum(a != b for a, b in itertools.pairwise(hops)) > switches
    # A much wider mouth asked for picks a more open source mouth.
    mouths = _library(sparse)
    shut, mesh = sparse[0]
    wide = mouths.render(shut, mesh, 0.75)[2]
    narrow = mouths.render(shut, mesh, 0.35)[2]
    assert wide.mouth.gap > narrow.mouth.gap


def test_pixels_away_from_the_mouth_are_untouched(talking):
    mouths = _library(talking)
    shut, mesh = talking[0]
    patch, path, _ = mouths.render(shut, mesh, 0.7)
    assert path == RETRIEVED
    out = patch.onto(shut)
    warp_only = reanimate(shut, mesh, 0.7)
    # Everything the paste changed (against the warp) lies around the lips.
    ys, xs = np.nonzero(np.any(out != warp_only, axis=2))
    lips = np.asarray(mesh, np.float64)[[61, 291, 0, 17], :2]
    width = np.linalg.norm(lips[1] - lips[0])
    assert len(ys) > 100
    assert xs.min() >= lips[:, 0].min() - 0.1 * width
    assert xs.max() <= lips[:, 0].max() + 0.1 * width
    assert ys.min() >= lips[2, 1] - 0.1 * width  # not above the upper lip
    assert ys.max() <= lips[3, 1] + OPEN_GAP * width  # nor below the moved lower lip
    # and, against the source frame, the eyes, nose and background are the frame's own
    changed = np.any(out != shut, axis=2)
    assert not changed[: int(mesh[1, 1])].any()  # nothing above the nose tip
    assert not changed[:, : int(mesh[234, 0])].any()  # nothing left of the face


def test_the_library_never_holds_more_than_its_cap(analyzer, talking):
    """A long video of ever new mouth shapes: the library stays at its cap and keeps mouths
    spread over the openings seen (not only the latest)."""
    library = MouthLibrary(cap=6)
    index = 0
    frames = [f for f, _ in talking[2:]]
    meshes = [m for _, m in talking[2:]]
    for repeat in range(4):  # the same smile, a little further right and brighter each time
        for frame, mesh in zip(frames, meshes, strict=True):
            shifted = np.roll(frame, 2 * repeat, axis=1)
            moved = mesh.copy()
            moved[:, 0] += 2 * repeat
            brighter = np.clip(shifted.astype(int) + 3 * repeat, 0, 255).astype(np.uint8)
            library.add(index, brighter, moved)
            assert len(library) <= 6
            index += 1
    assert len(library) == 6
    gaps = sorted(e.mouth.gap for e in library.entries)
    assert gaps[-1] - gaps[0] > 0.05  # still from barely to fully open
    # Revisiting a frame (a looped video) adds nothing.
    kept = library.entries[0]
    assert library.add(kept.index, frames[0], meshes[0]) is None
    assert len(library) == 6
    # Each entry is small: its crop is canonical, whatever the frame size.
    assert all(e.crop.nbytes <= 180 * 160 * 3 for e in library.entries)


def test_lip_points_are_in_mouth_widths(astronaut):
    _, mesh = astronaut
    points = lip_points(mesh, mouth_frame(mesh))
    assert points.shape == (40, 2)
    assert 0.7 < np.ptp(points[:, 0]) < 1.2  # corner to corner ~ one mouth width


def test_a_crop_renders_what_the_whole_frame_renders(talking):
    """The library and the render fed crops of the frames with their meshes moved by the
    crop's origin (as the lipsync model feeds them): the same mouths retrieved and the same
    pixels, the box moved by the origin."""
    ox, oy = 61, 37
    shift = np.float32([ox, oy, 0])
    crops = [(frame[oy : oy + 400, ox : ox + 380], mesh - shift) for frame, mesh in talking]
    whole, cropped = _library(talking), _library(crops)
    for (frame, mesh), (crop, moved) in zip(talking[:2], crops[:2], strict=True):
        for openness in (0.3, 0.5, 0.7):
            a, path, entry = whole.render(frame, mesh, openness)
            b, path_b, entry_b = cropped.render(crop, moved, openness)
            assert path_b == path and (entry_b is None) == (entry is None)
            assert entry is None or entry.index == entry_b.index
            x0, y0, x1, y1 = a.box
            assert b.box == (x0 - ox, y0 - oy, x1 - ox, y1 - oy)
            np.testing.assert_array_equal(b.pixels, a.pixels)
    assert path == RETRIEVED


def test_one_mouth_frame_for_the_library_and_the_render_changes_nothing(talking):
    """lipsync makes each frame's mouth_frame once and hands it to observe and render (the
    choice then reuses the library's description of the frame): the same pixels, path and
    entry as when each makes its own."""
    own, given = SourceMouths(), SourceMouths()
    for index, (frame, mesh) in enumerate(talking + talking[::-1][1:]):
        openness = 0.1 * (index % 8)
        own.observe(index, frame, mesh)
        mf = mouth_frame(mesh)
        given.observe(index, frame, mesh, mf)
        a, b = own.render(frame, mesh, openness), given.render(frame, mesh, openness, mf)
        assert a[1] == b[1] and (a[2] is None) == (b[2] is None)
        assert a[2] is None or a[2].index == b[2].index
        assert (a[0] is None) == (b[0] is None)
        if a[0] is not None:
            assert a[0].box == b[0].box and np.array_equal(a[0].pixels, b[0].pixels)
