"""Unit tests for the streaming speech -> mouth-openness estimator."""

import shutil
import subprocess
import wave

import numpy as np
import pytest
from mouth_motion import MouthMotion

SR = 16000


def run_all(x: np.ndarray, sr: int = SR, fps: float = 25.0, chunks=None) -> np.ndarray:
    """Push ``x`` split at the given chunk sizes (one piece if None), then finish()."""
    mm = MouthMotion(sr, fps)
    outs = []
    if chunks is None:
        outs.append(mm.push(x))
    else:
        pos = 0
        for size in chunks:
            outs.append(mm.push(x[pos : pos + size]))
            pos += size
        outs.append(mm.push(x[pos:]))
    outs.append(mm.finish())
    return np.concatenate(outs)


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale so the RMS over the non-silent samples is ``dbfs``."""
    active = x[np.abs(x) > 1e-4]
    return (x * (10 ** (dbfs / 20) / np.sqrt(np.mean(active**2)))).astype(np.float32)


@pytest.fixture(scope="module")
def espeak(tmp_path_factory) -> tuple[np.ndarray, int]:
    """espeak-ng speech (its native 22050 Hz) with 0.5 s silence before and 1 s after."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run `make system-deps`")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Hello there. This is a test of the talking avatar. The quick brown fox jumps."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as w:
        sr = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    x = np.concatenate([np.zeros(sr // 2, np.float32), x, np.zeros(sr, np.float32)])
    return set_level(x, -20.0), sr


@pytest.mark.parametrize("fps", [25.0, 30.0, 24.0, 29.97])
@pytest.mark.parametrize("seconds", [0.0, 0.001, 0.04, 1.0, 2.345, 9.51])
def test_frame_count(fps, seconds):
    n = int(round(seconds * SR))
    x = np.zeros(n, np.float32)
    assert len(run_all(x, fps=fps)) == round(n * fps / SR)
    assert len(run_all(x, fps=fps, chunks=[7] * (n // 7))) == round(n * fps / SR)


def test_empty_and_tiny_pushes():
    mm = MouthMotion(SR, 25.0)
    assert mm.push(np.zeros(0, np.float32)).shape == (0,)
    assert mm.push(np.zeros(1, np.float32)).dtype == np.float32
    assert len(mm.finish()) == 0  # 1 sample = 0.0025 frames -> rounds to 0


def test_chunking_invariance(espeak):
    x, sr = espeak
    ref = run_all(x, sr)
    rng = np.random.default_rng(1)
    random_sizes = rng.integers(0, 3000, size=len(x) // 1000).tolist()
    for chunks in ([sr] * (len(x) // sr), [160] * (len(x) // 160), [7] * 5000, random_sizes):
        out = run_all(x, sr, chunks=chunks)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-6)


def test_output_range_and_dtype(espeak):
    x, sr = espeak
    out = run_all(x, sr)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_silence_stays_closed():
    assert np.all(run_all(np.zeros(3 * SR, np.float32)) < 1e-3)


@pytest.mark.parametrize("hz", [50.0, 100.0])
def test_hum_stays_closed(hz):
    t = np.arange(4 * SR) / SR
    out = run_all((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
    assert out.max() < 0.05


def test_low_noise_floor_stays_closed():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(4 * SR).astype(np.float32) * 10 ** (-50 / 20)
    assert run_all(noise).max() < 0.05


def test_speech_opens_and_closes(espeak):
    x, sr = espeak
    fps = 25.0
    out = run_all(x, sr, fps)
    t = np.arange(len(out)) / fps
    # Speech activity per frame: RMS over the frame interval above -45 dBFS.
    hop = sr / fps
    rms_db = np.array(
        [
            10 * np.log10(np.mean(x[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12)
            for i in range(len(out))
        ]
    )
    speech = rms_db > -45
    assert out.max() > 0.5
    assert out[speech].mean() > 0.35
    assert out[~speech].mean() < 0.5 * out[speech].mean()
    # Clear open/close cycles, not a plateau: many dips below 0.3 between peaks above 0.6.
    crossings = np.sum((out[1:] > 0.6) & (out[:-1] <= 0.6))
    assert crossings >= 8
    # Closed within 100 ms after the end of speech.
    end = np.nonzero(np.abs(x) > 1e-3)[0][-1] / sr
    assert np.all(out[t >= end + 0.1] <= 0.05)
    # And before speech starts (0.5 s of leading silence).
    assert np.all(out[t < 0.4] <= 0.01)


def test_level_adaptive(espeak):
    x, sr = espeak
    quiet = run_all(set_level(x, -30.0), sr)
    loud = run_all(set_level(x, -10.0), sr)
    assert np.corrcoef(quiet, loud)[0, 1] > 0.9
    assert quiet.max() > 0.5


@pytest.mark.parametrize("fps", [24.0, 25.0, 29.97, 30.0, 60.0])
def test_lookahead(espeak, fps):
    """Guarantee: after N samples in total, exactly the frames with
    i / fps + lookahead_seconds <= N / sample_rate have been returned, and their values
    do not depend on any later audio (they equal the single-push result)."""
    x, sr = espeak
    mm = MouthMotion(sr, fps)
    assert mm.lookahead_seconds <= 0.08
    full = run_all(x, sr, fps)
    rng = np.random.default_rng(2)
    cuts = np.sort(rng.integers(0, len(x), size=40))
    got, pos = [], 0
    for cut in cuts:
        got.append(mm.push(x[pos:cut]))
        pos = cut
        k = sum(len(g) for g in got)
        ready = np.arange(len(full)) / fps + mm.lookahead_seconds <= cut / sr + 1e-9
        assert k == int(ready.sum()), (cut, k)
        # Replacing all audio after the cut with noise must not change emitted frames.
        tampered = x.copy()
        tampered[cut:] = rng.standard_normal(len(x) - cut).astype(np.float32) * 0.5
        np.testing.assert_allclose(run_all(tampered, sr, fps)[:k], full[:k], atol=1e-6)
