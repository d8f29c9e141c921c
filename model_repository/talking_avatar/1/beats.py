"""Streaming onset envelope, tempo and beat tracking (numpy only).

Every 10 ms hop (a 512-sample Hann window at 16 kHz) the log-magnitude spectrum is folded into
24 log-spaced bands; the onset strength is the summed positive band increase (spectral flux),
mean-removed against a 1 s running average. Tempo: every 0.5 s the autocorrelation of the last
6 s of onset strength over lags of 0.33-1.0 s (60-180 BPM), weighted by a log-normal prior around
120 BPM, picks the beat period; its normalised height is the periodicity (0..1), which
the audio classifier uses too.

Beats are placed causally, like a phase-locked loop: once the search window around the
predicted next beat (last beat + period, +-25 %) lies in the past, the strongest onset in it
(weighted by a Gaussian around the prediction) becomes the beat; with no clear onset the
prediction itself is kept (a flywheel through breaks). The first beat is the strongest onset
of the last period once a tempo is known. A beat is therefore known about period/4 (+ half a
window) after it happens, well inside the animator's lookahead for tempos >= 80 BPM, and the
head bob between known beats is extrapolated from the period. Hops are processed at fixed
sample positions, so results do not depend on chunking.

Shared by talking_avatar (this file) and audio_analysis (audio_analysis/1/beats.py is a
relative symlink to it: the analysis computes the same onset envelope and tempo estimate
over the whole clip at once).
"""

from __future__ import annotations

import math

import numpy as np
from shared import SAMPLE_RATE

HOP = SAMPLE_RATE // 100  # 10 ms
WIN = 512
_BANDS = 24
_HISTORY_S = 6.0
_TEMPO_EVERY = 50  # hops
_MIN_LAG, _MAX_LAG = 33, 100  # hops: 180..60 BPM
_PRIOR_CENTRE = 50  # 120 BPM


class BeatTracker:
    def __init__(self, sample_rate: int = SAMPLE_RATE):
        self.sr = sample_rate
        self._pending = np.zeros(WIN - HOP, np.float32)  # implicit silence before t = 0
        self._taper = np.hanning(WIN).astype(np.float32)
        freqs = np.fft.rfftfreq(WIN, 1.0 / sample_rate)
        edges = np.geomspace(60.0, 7600.0, _BANDS + 1)
        self._band_of = np.digitize(freqs, edges) - 1
        self._valid = (self._band_of >= 0) & (self._band_of < _BANDS)
        self._prev = None
        self.onset: list[float] = []  # onset strength per hop (hop k ends at sample (k+1)*HOP)
        self.level_db: list[float] = []  # broadband level per hop
        self.flatness: list[float] = []  # spectral flatness per hop (0 tonal .. 1 noise)
        self._avg = 0.0
        self.period: float | None = None  # seconds
        self.periodicity = 0.0
        self.beats: list[float] = []  # beat times in seconds

    def hop_time(self, k: int) -> float:
        """Centre of the analysis window of hop k, in seconds."""
        return ((k + 1) * HOP - WIN / 2) / self.sr

    def push(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        buf = np.concatenate((self._pending, x))
        pos = 0
        while buf.size - pos >= WIN:
            self._hop(buf[pos : pos + WIN])
            pos += HOP
        self._pending = buf[pos:]

    def flush(self) -> None:
        n = self._pending.size - (WIN - HOP)
        if n > 0:
            self.push(np.zeros(WIN - self._pending.size, np.float32))

    def _hop(self, w: np.ndarray) -> None:
        spec = np.abs(np.fft.rfft(w * self._taper)) ** 2
        bands = np.bincount(self._band_of[self._valid], spec[self._valid], minlength=_BANDS)
        logb = np.log10(bands + 1e-9)
        total = float(spec.sum()) / (WIN * 0.375 * WIN / 2)
        self.level_db.append(10.0 * math.log10(total + 1e-12))
        sp = spec[5:240] + 1e-12
        self.flatness.append(float(np.exp(np.mean(np.log(sp))) / np.mean(sp)))
        flux = 0.0 if self._prev is None else float(np.maximum(logb - self._prev, 0.0).sum())
        self._prev = logb
        self._avg += 0.01 * (flux - self._avg)
        self.onset.append(max(flux - self._avg, 0.0))
        k = len(self.onset)
        if k % _TEMPO_EVERY == 0:
            self._tempo()
        self._track()

    def _tempo(self) -> None:
        n = int(_HISTORY_S * self.sr / HOP)
        env = np.asarray(self.onset[-n:], np.float64)
        if env.size < 2 * _MAX_LAG or env.std() < 1e-6:
            self.periodicity = 0.0
            return
        env = env - env.mean()
        ac = np.correlate(env, env, "full")[env.size - 1 :]
        ac = ac / (ac[0] + 1e-12)
        lags = np.arange(_MIN_LAG, _MAX_LAG + 1)
        prior = np.exp(-0.5 * (np.log2(lags / _PRIOR_CENTRE) / 0.9) ** 2)
        score = ac[lags] * prior
        best = int(lags[np.argmax(score)])
        # Parabolic refinement of the peak for a sub-hop period.
        y0, y1, y2 = ac[best - 1], ac[best], ac[best + 1]
        d = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if (y0 - 2 * y1 + y2) < 0 else 0.0
        self.periodicity = float(max(ac[best], 0.0))
        if self.periodicity >= 0.2:
            self.period = (best + float(np.clip(d, -0.5, 0.5))) * HOP / self.sr
        elif self.periodicity < 0.1:
            self.period = None

    def _track(self) -> None:
        if self.period is None:
            return
        p = self.period
        k_now = len(self.onset) - 1
        t_now = self.hop_time(k_now)
        env = self.onset
        if not self.beats:
            k0 = max(k_now - int(p * self.sr / HOP), 0)
            seg = np.asarray(env[k0 : k_now + 1])
            if seg.size and seg.max() > 0:
                self.beats.append(self.hop_time(k0 + int(np.argmax(seg))))
            return
        pred = self.beats[-1] + p
        if t_now < pred + 0.25 * p:
            return
        ka = max(int(math.ceil((pred - 0.25 * p) * self.sr / HOP + WIN / 2 / HOP - 1)), 0)
        kb = min(k_now, ka + int(0.5 * p * self.sr / HOP) + 1)
        seg = np.asarray(env[ka : kb + 1])
        times = np.array([self.hop_time(k) for k in range(ka, kb + 1)])
        weight = np.exp(-0.5 * ((times - pred) / (0.12 * p)) ** 2)
        scored = seg * weight
        recent = np.asarray(env[max(0, k_now - 300) :])
        if scored.size and scored.max() > 0.5 * (recent.mean() + recent.std()):
            self.beats.append(float(times[int(np.argmax(scored))]))
        else:
            self.beats.append(pred)

    def beat_phase(self, t: float) -> tuple[float, float] | None:
        """(phase 0..1 since the last known beat at or before t, period) or None."""
        if self.period is None or not self.beats:
            return None
        last = None
        for b in reversed(self.beats):
            if b <= t:
                last = b
                break
        if last is None:
            last = self.beats[0] - self.period * math.ceil((self.beats[0] - t) / self.period)
        return ((t - last) / self.period) % 1.0, self.period

    def onset_near(self, t0: float, t1: float) -> float:
        """Strongest onset strength with its window centre in [t0, t1)."""
        k0 = max(int(math.floor(t0 * self.sr / HOP + WIN / 2 / HOP - 1)), 0)
        k1 = min(int(math.ceil(t1 * self.sr / HOP + WIN / 2 / HOP - 1)), len(self.onset))
        return max(self.onset[k0:k1], default=0.0)
