"""The quality benchmark's measures (bench/quality/metrics.py) work on real renders: they give
finite numbers of the right kind. Figures are the benchmark's business (`make bench-quality`);
nothing here asserts on quality."""

from __future__ import annotations

import math
import sys

import numpy as np
from media import PORTRAIT, ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.quality import inputs, metrics
from bench.quality.renders import render


def test_metrics_on_one_avatar_and_one_lipsync_render(client, pause_speech, short_speech, tmp_path):
    out = tmp_path / "avatar.mp4"
    render(client, pause_speech, out, image=PORTRAIT.read_bytes())
    decoded = metrics.decode(out)
    lms = metrics.landmarks(decoded.frames)
    assert len(decoded.frames) == len(lms) > 50 and len(decoded.audio) > decoded.rate
    opening = metrics.mouth_opening(lms)
    env = metrics.envelope_db(decoded)
    sync = metrics.sync(opening, 10 ** (env / 20))
    assert isinstance(sync.lag, int) and -metrics.MAX_LAG <= sync.lag <= metrics.MAX_LAG
    assert math.isfinite(sync.corr) and -1 <= sync.corr <= 1
    mouth = metrics.openings(opening, env)
    assert mouth.speech_frames > 0 and mouth.silence_frames > 0
    assert all(math.isfinite(v) for v in (mouth.speech_mean, mouth.silence_mean))
    assert math.isfinite(metrics.jitter(lms).std_px)
    assert abs(metrics.audio_offset_ms(pause_speech, decoded)) <= 300

    still = tmp_path / "still.mp4"
    still.write_bytes(inputs.still_video(inputs.load_rgb(PORTRAIT), 1.0))
    lipsync = tmp_path / "lipsync.mp4"
    render(client, short_speech, lipsync, video=still.read_bytes(), sync_mode="cut_off")
    out_frames = metrics.decode(lipsync, audio=False).frames
    src_frames = metrics.decode(still, audio=False).frames
    n = min(len(out_frames), len(src_frames))
    psnr = metrics.psnr_outside_face(
        out_frames[:n], src_frames[:n], metrics.landmarks(src_frames[:n])
    )
    assert len(psnr) == n > 0 and np.all(np.isfinite(psnr))


def test_beat_follow_finds_a_known_tempo():
    fps, bpm = 25.0, 120.0
    times = np.arange(250) / fps
    nod = np.cos(2 * np.pi * times * bpm / 60) + 0.05 * times  # a bob on a slow drift
    follow = metrics.beat_follow(nod, times, bpm, detrend=True)
    assert abs(follow.tempo_bpm - bpm) < 3 and follow.autocorr_beat > 0.8
    assert abs(follow.peak_phase) <= 0.125  # highest on the beat
