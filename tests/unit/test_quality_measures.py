"""The quality benchmark's new measures on synthetic cases whose answer is known
(bench/quality/selfcheck.py): the lower-face sharpness ratio reads 1 for an unchanged frame
and drops for a blurred lower face; the fold/glitch count finds injected one-frame pops and
reads 0 on smooth talking, steps, zoom and roll."""

from __future__ import annotations

import pytest

from bench.quality import selfcheck


@pytest.mark.parametrize(
    "check", ["sharpness", "glitches"], ids=["lower-face sharpness", "folds and glitches"]
)
def test_the_benchmark_measures_read_what_they_should(check):
    results = selfcheck.sharpness_checks() if check == "sharpness" else selfcheck.glitch_checks()
    assert results
    failed = [(name, round(value, 3)) for name, value, ok in results if not ok]
    assert not failed
