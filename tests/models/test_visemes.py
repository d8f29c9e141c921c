"""Phones -> visemes: mapping rules, streamed phone recognition and forced alignment."""

import numpy as np
import pytest
from animator import Animator
from audio_fixtures import speech
from phones import PhoneTracker
from visemes import (
    CLOSED,
    FV,
    OPEN,
    PUCKERED,
    REST,
    WIDE,
    ShapeSmoother,
    closure_interval,
    frame_viseme,
)

FPS = 25.0


def test_closure_is_40_to_120_ms_ending_at_release():
    assert closure_interval(1.0, 1.01) == pytest.approx((0.97, 1.01))
    assert closure_interval(1.0, 1.5) == pytest.approx((1.38, 1.5))
    assert closure_interval(1.0, 1.08) == pytest.approx((1.0, 1.08))


def test_frame_viseme_rules():
    segs = [("SIL", 0.0, 0.5), ("M", 0.5, 0.53), ("AA", 0.53, 0.7), ("T", 0.7, 0.75)]
    segs += [("UW", 0.75, 0.9), ("F", 0.9, 1.0), ("IY", 1.0, 1.2), ("SIL", 1.2, 2.0)]

    def at(t):
        return frame_viseme(segs, t, t + 1 / FPS)

    # a 30 ms /m/ still closes the lips on a frame (closure stretched to 40 ms)
    assert CLOSED in (at(0.48), at(0.52))
    assert at(0.6) == OPEN
    assert at(0.71) == PUCKERED  # T takes the shape of the following vowel (coarticulation)
    assert at(0.92) == FV
    assert at(1.08) == WIDE
    assert at(1.5) == REST


def test_smoother_no_flutter_and_closure_on_time():
    sm = ShapeSmoother(FPS)
    w1 = sm.step(OPEN)
    w2 = sm.step(WIDE)  # a one-frame label change is blended, not a jump
    assert (0 < w2[1] < 1.0 and w2[0] < w1[0] + 1e-9) or w2[0] > 0.5
    w3 = sm.step(CLOSED)
    assert w3[0] == 0.0 and w3[3] == 1.0


@pytest.fixture(scope="module")
def mama(tmp_path_factory):
    return speech(tmp_path_factory.mktemp("mama"), "mama papa")


def _frames(x, **kw):
    an = Animator(FPS, seed=1, **kw)
    return an, an.push(x) + an.finish()


def test_mama_papa_closes_at_bilabials_and_opens_at_a(mama):
    _, frames = _frames(mama)
    vis = np.array([f.viseme for f in frames])
    opening = np.array([f.openness for f in frames])
    assert (vis == CLOSED).sum() >= 2
    assert (vis == OPEN).sum() >= 4
    assert np.all(opening[vis == CLOSED] == 0.0)
    # closed frames sit between open ones (inside the speech, not in the silences)
    first_open = np.nonzero(vis == OPEN)[0][0]
    last_open = np.nonzero(vis == OPEN)[0][-1]
    closed = np.nonzero(vis == CLOSED)[0]
    assert np.all((closed > first_open) & (closed < last_open))


def test_forced_alignment_phones_in_order_and_closed_at_plosives(mama):
    tracker = PhoneTracker("Mama, papa!")
    assert tracker.aligned
    tracker.push(mama)
    tracker.flush()
    phones = [p for p, _, _ in tracker.segments if p != "SIL"]
    assert phones[:6] == ["M", "AA", "M", "AH", "P", "AA"]
    an, frames = _frames(mama, transcript="Mama, papa!")
    vis = np.array([f.viseme for f in frames])
    # every /p/ the streamed alignment reported gets closed frames ending at its release
    for phone, s, e in an.phones.segments:
        if phone == "P":
            i = int(e * FPS)
            assert CLOSED in vis[max(i - 2, 0) : i + 1], (s, e, vis[i - 3 : i + 2])
    assert (vis == CLOSED).sum() >= 3


def test_unknown_transcript_words_fall_back_to_recognition():
    assert not PhoneTracker("zzqx qqzx").aligned
    assert not PhoneTracker("   ").aligned


def test_mouth_at_rest_within_100_ms_after_speech(tmp_path):
    x = speech(tmp_path, "Hello there, how are you today?", lead=0.3, tail=1.0)
    _, frames = _frames(x)
    end = np.nonzero(np.abs(x) > 2e-3)[0][-1] / 16000
    for f in frames:
        t = f.index / FPS
        if t >= end + 0.1:
            assert f.openness == 0.0 and f.viseme == REST, (t, end)
            assert not np.any(f.shapes > 1e-3)
