"""Streaming guarantees of the Animator, audio kinds, beats, and the living portrait."""

import numpy as np
import pytest
from animator import LOOKAHEAD_S, Animator
from audio_fixtures import click_track, melody, speech
from audio_kind import MUSIC, OTHER, SPEECH
from liveliness import Blinks

FPS = 25.0
SR = 16000


def run(x, chunks=None, fps=FPS, **kw):
    an = Animator(fps, seed=7, **kw)
    out = []
    if chunks is None:
        out += an.push(x)
    else:
        pos = 0
        for size in chunks:
            out += an.push(x[pos : pos + size])
            pos += size
        out += an.push(x[pos:])
    out += an.finish()
    return an, out


def as_array(frames):
    return np.array(
        [[f.openness, f.viseme, *f.shapes, *f.pose, f.blink, f.brow, f.kind] for f in frames]
    )


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    text = "Hello there. This is a test of the talking avatar. The quick brown fox jumps."
    return speech(tmp_path_factory.mktemp("talk"), text)


def test_lookahead_declared_and_within_budget():
    assert Animator(FPS).lookahead_seconds == LOOKAHEAD_S <= 0.25


def test_chunking_invariance(talk):
    _, ref = run(talk)
    ref = as_array(ref)
    assert len(ref) == round(len(talk) * FPS / SR)
    rng = np.random.default_rng(3)
    for chunks in ([SR] * 8, [321] * 40, rng.integers(0, 5000, size=30).tolist()):
        np.testing.assert_allclose(as_array(run(talk, chunks)[1]), ref, atol=1e-6)


def test_lookahead_respected(talk):
    """After N samples, exactly the frames with t_i + lookahead <= N / sr are out, and
    they do not depend on any later audio."""
    _, full = run(talk)
    full = as_array(full)
    an = Animator(FPS, seed=7)
    got, pos = [], 0
    rng = np.random.default_rng(4)
    for cut in sorted(rng.integers(0, len(talk), size=6)):
        got += an.push(talk[pos:cut])
        pos = cut
        ready = np.arange(len(full)) / FPS + LOOKAHEAD_S <= cut / SR + 1e-9
        assert len(got) == int(ready.sum())
        tampered = talk.copy()
        tampered[cut:] = rng.standard_normal(len(talk) - cut).astype(np.float32) * 0.3
        k = len(got)
        np.testing.assert_allclose(as_array(run(tampered)[1])[:k], full[:k], atol=1e-6)


def test_speech_is_speech_and_moves(talk):
    an, frames = run(talk)
    assert frames[-1].kind == SPEECH
    assert max(f.openness for f in frames) > 0.5
    assert an.lookahead_seconds <= 0.25


def test_click_track_beats_and_music(tmp_path):
    x = click_track(tmp_path, 120.0, 10.0)
    an, frames = run(x)
    assert frames[-1].kind == MUSIC
    assert an.beats.period == pytest.approx(0.5, abs=0.02)
    clicks = np.arange(0, 10.0, 0.5)
    beats = np.array(an.beats.beats)
    assert len(beats) >= 12
    err = np.abs(beats[:, None] - clicks[None, :]).min(1)
    assert np.all(err < 0.05), err
    # the mouth stays shut (no voice), the head bobs with the beat
    assert max(f.openness for f in frames) == 0.0
    pitch = np.array([f.pose[1] for f in frames])[100:]
    assert np.ptp(pitch) > 0.8
    spec = np.abs(np.fft.rfft(pitch - pitch.mean()))
    freqs = np.fft.rfftfreq(len(pitch), 1 / FPS)
    assert freqs[np.argmax(spec)] == pytest.approx(2.0, abs=0.15)  # 120 BPM = 2 Hz


def test_melody_without_voice_keeps_mouth_closed():
    _, frames = run(melody(6.0))
    assert all(f.openness == 0.0 for f in frames)
    assert frames[-1].kind == MUSIC


def test_silence_is_other_and_still():
    _, frames = run(np.zeros(3 * SR, np.float32))
    assert frames[-1].kind == OTHER
    assert all(f.openness == 0.0 and not np.any(f.pose) for f in frames)


def blink_count(seed, rate=15.0, seconds=60.0):
    b = Blinks(rate, np.random.default_rng(seed))
    vals = np.array([b.value(i / FPS) for i in range(int(seconds * FPS))])
    return int(np.sum((vals[1:] > 0.5) & (vals[:-1] <= 0.5))), vals


def test_blinks_rate_and_seed():
    n, v1 = blink_count(1)
    assert 8 <= n <= 24
    _, v1b = blink_count(1)
    _, v2 = blink_count(2)
    assert np.array_equal(v1, v1b)
    assert not np.array_equal(v1, v2)
    assert blink_count(1, rate=0.0)[0] == 0
    assert 30 <= blink_count(5, rate=45.0)[0] <= 60
    assert v1.max() == 1.0  # blinks close fully


def test_same_seed_same_frames_other_seed_differs(talk):
    a = as_array(run(talk[: 4 * SR])[1])
    b = as_array(run(talk[: 4 * SR])[1])
    an = Animator(FPS, seed=99)
    c = as_array(an.push(talk[: 4 * SR]) + an.finish())
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_head_pose_bounded_and_centred(talk):
    long = np.concatenate([talk] * 3)
    _, frames = run(long, head_motion_scale=2.0)
    pose = np.array([f.pose for f in frames])
    assert np.all(np.abs(pose) <= [6.0, 5.0, 4.0])
    assert np.abs(pose).max() > 0.3  # it does move
    assert np.all(np.abs(pose.mean(0)) < 1.5)
    _, still = run(talk, head_motion_scale=0.0)
    assert all(not np.any(f.pose) for f in still)
