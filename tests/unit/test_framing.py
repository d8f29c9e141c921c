"""Output size and portrait placement."""

from __future__ import annotations

import numpy as np
import pytest

from a2v_server.errors import InvalidInput
from a2v_server.pipeline import framing


@pytest.mark.parametrize(
    ("aspect", "short", "expected"),
    [
        ("16:9", 720, (1280, 720)),
        ("9:16", 720, (720, 1280)),
        ("1:1", 1080, (1080, 1080)),
        ("4:3", 480, (640, 480)),
        ("3:4", 480, (480, 640)),
        ("16:9", 480, (854, 480)),
        (None, 720, (960, 720)),  # source 4:3
    ],
)
def test_output_size_presets(aspect, short, expected):
    assert framing.output_size((800, 600), aspect=aspect, short_side=short) == expected


def test_explicit_size_must_be_even_and_match_aspect():
    assert framing.output_size((800, 600), aspect=None, size=(512, 512)) == (512, 512)
    with pytest.raises(InvalidInput) as odd:
        framing.output_size((800, 600), aspect=None, size=(513, 512))
    assert odd.value.field == "config.output.resolution.size"
    with pytest.raises(InvalidInput):
        framing.output_size((800, 600), aspect="16:9", size=(512, 512))


def _covered(placement, src_wh, out_wh):
    x0, y0 = placement.dx, placement.dy
    x1, y1 = x0 + src_wh[0] * placement.scale, y0 + src_wh[1] * placement.scale
    return x0 <= 0.5 and y0 <= 0.5 and x1 >= out_wh[0] - 0.5 and y1 >= out_wh[1] - 0.5


def test_crop_fills_the_frame_and_keeps_an_off_centre_face():
    src, out = (1600, 900), (720, 1280)  # landscape photo into a 9:16 frame
    face = (1200.0, 300.0, 1400.0, 520.0)  # near the right edge
    p = framing.place(src, out, face, "crop")
    assert _covered(p, src, out)
    box = p.points(np.array(face).reshape(2, 2)).ravel()
    assert box[0] >= 0 and box[2] <= out[0] and box[1] >= 0 and box[3] <= out[1]


def test_crop_zooms_out_rather_than_cutting_a_large_face():
    src, out = (1000, 1000), (1280, 720)
    face = (50.0, 50.0, 950.0, 950.0)  # the face fills the photo
    p = framing.place(src, out, face, "crop")
    box = p.points(np.array(face).reshape(2, 2)).ravel()
    assert box[1] >= -0.5 and box[3] <= out[1] + 0.5


def test_pad_shows_everything_over_a_blurred_fill():
    img = np.full((400, 300, 3), 200, np.uint8)
    out = (640, 360)
    p = framing.place((300, 400), out, (100, 100, 200, 220), "pad")
    fitted = framing.render_fitted(img, p, out)
    assert fitted.shape == (360, 640, 3)
    assert fitted[:, 320].mean() == pytest.approx(200, abs=2)  # the picture, centred
    assert fitted[:, 5].mean() < 150  # darkened fill at the sides


def test_largest_preset_within_a_pixel_budget():
    assert framing.largest_preset_within((3840, 2160), None, 1920 * 1080) == (1080, (1920, 1080))
    assert framing.largest_preset_within((3840, 2160), None, 1920 * 1080 - 1) == (720, (1280, 720))
    assert framing.largest_preset_within((500, 500), "9:16", 480 * 854) == (480, (480, 854))
    assert framing.largest_preset_within((500, 500), "1:1", 1000) is None


def test_source_shape_is_clamped_to_the_widest_aspect():
    wide = framing.output_size((8000, 1000), aspect=None, short_side=480)
    assert wide == (int(480 * framing.MAX_SOURCE_ASPECT), 480)
    tall = framing.output_size((1000, 8000), aspect=None, short_side=480)
    assert tall == (480, int(480 * framing.MAX_SOURCE_ASPECT))


def test_crop_zooms_in_on_a_small_face():
    # A 60 px face in a 4000x3000 photo: covering 1280x720 would show it 23 px wide.
    p = framing.place((4000, 3000), (1280, 720), (3000, 1000, 3060, 1060), "crop")
    (x0, y0), (x1, y1) = p.points(np.array([[3000, 1000], [3060, 1060]], np.float64))
    assert x1 - x0 == pytest.approx(720 * framing.MIN_FACE_SHARE)
    assert 0 < x0 < x1 < 1280 and 0 < y0 < y1 < 720
    # a tiny frame: at least MIN_FACE_PIXELS
    p = framing.place((4000, 3000), (64, 64), (3000, 1000, 3060, 1060), "crop")
    assert 60 * p.scale == pytest.approx(framing.MIN_FACE_PIXELS)
    # an ordinary portrait is not zoomed in: covered (or fitted to its face), the face is large
    p = framing.place((800, 600), (640, 480), (300, 200, 500, 400), "crop")
    assert p.scale == pytest.approx(0.8)
    p = framing.place((300, 400), (640, 360), (100, 100, 200, 220), "crop")
    assert p.scale == pytest.approx(360 / (120 * (1 + 2 * framing.FACE_MARGIN)))
