"""Converter.to_rgb: a box of a packed I420 picture in RGB, through one kept input picture."""

from __future__ import annotations

import numpy as np

from a2v_server.media.yuv import BT709, Converter


def test_boxes_of_any_size_match_the_whole_picture_and_stay_put():
    rng = np.random.default_rng(7)
    w, h = 320, 240
    i420 = rng.integers(16, 236, (h * 3 // 2, w), dtype=np.uint8)
    whole = Converter(BT709).to_rgb(i420)
    converter = Converter(BT709)
    boxes = [(0, 0, 320, 240), (40, 20, 200, 180), (50, 30, 210, 190), (100, 60, 164, 124)]
    results = [converter.to_rgb(i420, box) for box in boxes]
    for (x0, y0, x1, y1), rgb in zip(boxes, results, strict=True):
        assert rgb.shape == (y1 - y0, x1 - x0, 3)
        inner = (slice(2, -2), slice(2, -2))  # the edges' chroma has no outside neighbours
        assert np.array_equal(rgb[inner], whole[y0:y1, x0:x1][inner])
    # the kept input picture is reused: results already returned do not change
    again = [Converter(BT709).to_rgb(i420, box) for box in boxes]
    assert all(np.array_equal(a, b) for a, b in zip(results, again, strict=True))


def test_a_frames_sampling_is_named_as_a_camera_names_it():
    """Accepted.warnings' words for a video converted to 8-bit 4:2:0 limited range."""
    import av

    from a2v_server.media.yuv import sampling_of

    names = {
        "yuv422p10le": "10-bit 4:2:2",
        "yuv444p": "8-bit 4:4:4",
        "yuvj420p": "8-bit 4:2:0 full range",
        "yuvj422p": "8-bit 4:2:2 full range",
        "yuva420p": "8-bit 4:2:0 with alpha",
        "gray": "8-bit monochrome",
        "yuv420p12le": "12-bit 4:2:0",
    }
    for fmt, name in names.items():
        assert sampling_of(av.VideoFrame(64, 32, fmt)) == name, fmt
    full = av.VideoFrame(64, 32, "yuv420p")
    full.color_range = 2  # flagged in the stream (VP9, HEVC), not in the pixel format
    assert sampling_of(full) == "8-bit 4:2:0 full range"
