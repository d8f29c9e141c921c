"""Prompt steering: what the words do, what is reported unused, and what the frames get."""

from __future__ import annotations

import numpy as np
import pytest

from a2v_server.pipeline.look import FrameStyler, parse_prompt


@pytest.mark.parametrize(
    ("prompt", "camera", "looks", "unused"),
    [
        ("", "static", (), ()),
        ("Slow zoom in, warm", "zoom_in", ("warm",), ()),
        ("pan left in black and white with film grain", "pan_left", ("mono", "grain"), ()),
        ("handheld, high contrast, cool tones", "handheld", ("contrast", "cool"), ("tones",)),
        ("a cheerful purple dragon", "static", (), ("cheerful", "purple", "dragon")),
        ("zoom out then zoom in", "zoom_out", (), ("then",)),  # the first camera move wins
        ("ünïcödé 😀 warm", "static", ("warm",), ("ünïcödé",)),
    ],
)
def test_parse_prompt(prompt, camera, looks, unused):
    s = parse_prompt(prompt)
    assert (s.camera, s.looks, s.unused_words) == (camera, looks, unused)


def test_delivery_words_scale_motion():
    assert parse_prompt("calm and subtle").delivery < 1 < parse_prompt("energetic").delivery


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_styles_change_frames_deterministically():
    frame = _frame()
    styler = FrameStyler(
        parse_prompt("handheld, film grain, warm"), (160, 120), 25, 42, (60, 30, 100, 90)
    )
    a, b = styler.apply(10, frame), styler.apply(10, frame)
    assert np.array_equal(a, b) and not np.array_equal(a, frame)
    other = FrameStyler(
        parse_prompt("handheld, film grain, warm"), (160, 120), 25, 43, (60, 30, 100, 90)
    )
    assert not np.array_equal(other.apply(10, frame), a)  # another seed, another shake


def test_mono_and_warm_colours():
    frame = np.full((10, 10, 3), (100, 150, 200), np.uint8)
    mono = FrameStyler(parse_prompt("monochrome"), (10, 10), 25, 1, (2, 2, 8, 8)).apply(0, frame)
    assert np.all(mono[..., 0] == mono[..., 2])
    warm = FrameStyler(parse_prompt("warm"), (10, 10), 25, 1, (2, 2, 8, 8)).apply(0, frame)
    assert warm[0, 0, 0] > 100 and warm[0, 0, 2] < 200


def test_zoom_in_keeps_the_face_centre_fixed():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[48:52, 68:72] = 255  # a marker at the face centre (70, 50)
    styler = FrameStyler(parse_prompt("zoom in"), (100, 100), 25, 1, (60, 40, 80, 60))
    late = styler.apply(25 * 15, frame)  # 15 s in: zoomed
    ys, xs = np.nonzero(late[..., 0] > 128)
    assert abs(xs.mean() - 70) < 1.5 and abs(ys.mean() - 50) < 1.5
    assert len(xs) > 16  # the marker got bigger
