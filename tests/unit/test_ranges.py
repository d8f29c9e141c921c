"""Range re-render arithmetic: snapping to the encoder's keyframe grid, the frames of a batch
inside the range, the audio the output and the model get."""

from __future__ import annotations

import pytest

from a2v_server.media.encoder import keyframe_interval
from a2v_server.pipeline.ranges import snap


@pytest.mark.parametrize(
    ("start", "end", "fps", "first", "last"),
    [
        (1.3, 2.2, 25, 25, 75),  # widened to whole seconds
        (1.0, 3.0, 25, 25, 75),  # already on keyframes: kept
        (0.0, 0.01, 25, 0, 25),
        (2.0, None, 30, 60, None),  # to the end
        (1.0, 2.0, 29.97, 0, 60),  # NTSC: keyframes every 30 frames; 1.0 s is in frame 29
        (0.99, 1.01, 12.5, 12, 24),  # 12.5 fps: keyframes every 12 frames (round half even)
    ],
)
def test_snapped_to_keyframes(start, end, fps, first, last):
    r = snap(start, end, fps)
    assert (r.first, r.end) == (first, last)
    gop = keyframe_interval(fps)
    assert r.first % gop == 0 and (r.end is None or r.end % gop == 0)


def test_part_of_a_batch():
    r = snap(1.0, 2.0, 25)  # frames 25 .. 49
    assert r.part(20, 5) == (5, 5)  # all before
    assert r.part(23, 5) == (2, 5)
    assert r.part(45, 10) == (0, 5)
    assert r.part(50, 5) == (0, 0)  # all after
    assert r.frames_of(40) == 15 and r.frames_of(100) == 25 and r.frames_of(10) == 0


def test_audio_bounds():
    r = snap(1.0, 2.0, 25)
    assert r.output_samples(48000) == (48000, 96000)
    assert r.model_samples(0.24) == pytest.approx((2.0 + 0.24 + 0.2) * 16000, abs=1)
    assert r.model_samples(0.0) is None  # lookahead unknown: all of the audio
    assert snap(1.0, None, 25).model_samples(0.24) is None
