"""Lipsync sync modes: which source video frame each output frame shows
(a2v_server.pipeline.model_feed.source_index). The same modes end to end, with a server:
tests/service/test_lipsync_modes.py."""

from __future__ import annotations

import pytest

from a2v_server.pipeline.model_feed import source_index


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("bounce", [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]),
        ("loop", [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]),
        ("cut_off", [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]),
        ("silence", [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]),
        ("remap", [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]),
    ],
)
def test_source_index(mode, expected):
    assert [source_index(i, 4, mode, 10) for i in range(10)] == expected
