"""Streaming speech -> per-video-frame mouth openness (pure numpy, no Triton).

Frame ``i`` shows time ``t_i = i / fps``. Its openness is computed from a Hann-windowed
analysis window centred on the middle of the frame interval ``[t_i, t_i + 1/fps)``, so a
frame can be produced as soon as ``lookahead_seconds`` of audio after ``t_i`` exist.

Per frame the analyser measures the speech-band (250-4000 Hz) level in dBFS and maps it to
[0, 1] relative to a slowly decaying running peak (level adaptive, with a floor so silence
is never amplified) and above an absolute gate (noise floors <= -50 dBFS stay closed).
Low hum falls outside the speech band; broadband noise is further damped through spectral
flatness. An asymmetric one-pole smoother (fast attack, quick release) removes flutter
while still letting the mouth close between syllables.

All state updates happen per frame, in frame order, from sample positions computed with
exact rational arithmetic, so the output does not depend on how audio is split into
``push()`` calls.

Shared by talking_avatar (this file), lipsync (lipsync/1/mouth_motion.py is a relative
symlink to it: both mouths open with the same speech curve) and audio_analysis
(audio_analysis/1/mouth_motion.py, the same: the jaw curve it reports).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from shared import SAMPLE_RATE, frame_count

_BAND_HZ = (250.0, 4000.0)  # where vowel formants live; hum and sibilant hiss fall outside
_GATE_DB = -52.0  # speech-band level at or below which the mouth is always closed
_GATE_RAMP_DB = 8.0  # soft knee above the gate (avoids a hard on/off at the threshold)
_REF_FLOOR_DB = -30.0  # running peak never drops below this: quiet input is not boosted
_PEAK_DECAY_DB_S = 3.0  # running-peak decay; slow, so syllable dips survive normalisation
_OPEN_BELOW_PEAK_DB = 2.0  # band level this far below the running peak = fully open
_RANGE_DB = 30.0  # band level this far below "fully open" = closed
_ATTACK_S = 0.012  # smoothing time constants: the jaw opens quickly...
_RELEASE_S = 0.030  # ...and closes fast enough to be shut within 100 ms after speech
_MAX_LOOKAHEAD_S = 0.08


class MouthMotion:
    """Incremental mouth-openness estimator for one audio stream.

    ``lookahead_seconds``: frame ``i`` is returned by the first ``push()`` after which the
    total audio received ``N`` satisfies ``i / fps + lookahead_seconds <= N / sample_rate``
    (exactly, in rational arithmetic). It is <= 0.08 s for fps >= 12.5.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, fps: float = 25.0):
        if sample_rate < 8000:
            raise ValueError("sample_rate must be >= 8000 Hz")
        if not fps > 0:
            raise ValueError("fps must be > 0")
        self.sample_rate = int(sample_rate)
        self.fps = float(fps)
        # Exact samples per frame (the float fps value taken literally, e.g. 29.97).
        self._hop = Fraction(self.sample_rate) / Fraction(self.fps)

        # Analysis window: 1.5 frame intervals (overlapping neighbours smooths the raw curve),
        # 30-64 ms, centred on the middle of the frame interval unless that needs too much
        # lookahead (very low fps).
        window_s = min(max(1.5 / self.fps, 0.030), 0.064)
        end_s = min(0.5 / self.fps + window_s / 2, _MAX_LOOKAHEAD_S)
        self._win = int(round(window_s * self.sample_rate))
        self._end_off = int(round(end_s * self.sample_rate))  # window end relative to t_i
        self._start_off = self._end_off - self._win
        # A frame is also never emitted before its own interval has ended (matters only
        # below 12.5 fps), which keeps the streamed count <= the final count in finish().
        self._ready_off = max(Fraction(self._end_off), self._hop)
        self.lookahead_seconds = float(self._ready_off / self.sample_rate)

        self._nfft = 1 << (self._win - 1).bit_length()
        self._taper = np.hanning(self._win + 2)[1:-1]  # no zero end points
        self._taper_power = float(np.sum(self._taper**2))
        freqs = np.fft.rfftfreq(self._nfft, 1.0 / self.sample_rate)
        self._band = (freqs >= _BAND_HZ[0]) & (freqs < _BAND_HZ[1])
        # One-sided spectrum weights so band/total sums equal mean-square power (Parseval).
        self._bin_w = np.full(freqs.shape, 2.0)
        self._bin_w[0] = 1.0
        if self._nfft % 2 == 0:
            self._bin_w[-1] = 1.0
        dt = 1.0 / self.fps
        self._a_attack = 1.0 - math.exp(-dt / _ATTACK_S)
        self._a_release = 1.0 - math.exp(-dt / _RELEASE_S)
        self._peak_decay = _PEAK_DECAY_DB_S * dt
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state; the next push() starts a new stream at t = 0."""
        self._received = 0  # total samples pushed
        self._next = 0  # index of the next frame to emit
        # Buffer holds samples [self._buf_start, self._buf_start + len); negative times are
        # the implicit silence before the stream starts.
        self._buf_start = min(0, self._start_off)
        self._buf = np.zeros(-self._buf_start, dtype=np.float32)
        self._peak = -np.inf
        self._level = 0.0
        self._finished = False

    def _frame_start(self, i: int) -> int:
        return math.ceil(i * self._hop) + self._start_off

    def _ready_samples(self, i: int) -> int:
        """Smallest total sample count after which frame ``i`` may be emitted."""
        return math.ceil(i * self._hop + self._ready_off)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append float32 mono samples in [-1, 1]; return openness for newly complete frames."""
        if self._finished:
            raise RuntimeError("push() after finish(); call reset() to start a new stream")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size:
            self._buf = np.concatenate((self._buf, x))
            self._received += x.size
        out = []
        while self._ready_samples(self._next) <= self._received:
            out.append(self._emit())
        return np.asarray(out, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """End of audio: pad with silence and return the remaining frames.

        The total over all push()/finish() calls is ``frame_count(N, fps)`` (shared.py).
        """
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        total = frame_count(self._received, self.fps, self.sample_rate)
        out = [self._emit() for _ in range(max(0, total - self._next))]
        self._finished = True
        return np.asarray(out, dtype=np.float32)

    def _emit(self) -> float:
        start = self._frame_start(self._next) - self._buf_start
        seg = self._buf[start : start + self._win]
        if seg.size < self._win:  # only in finish(): the stream ended, pad with silence
            seg = np.concatenate((seg, np.zeros(self._win - seg.size, dtype=np.float32)))
        value = self._update(self._analyse(seg))
        self._next += 1
        # Drop samples no later frame needs (frame starts are non-decreasing).
        drop = self._frame_start(self._next) - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return value

    def _analyse(self, seg: np.ndarray) -> tuple[float, float, float]:
        """Speech-band level (dBFS, RMS), speech-band share of power, spectral flatness."""
        spec = np.abs(np.fft.rfft(seg.astype(np.float64) * self._taper, self._nfft)) ** 2
        spec *= self._bin_w / (self._nfft * self._taper_power)  # -> mean-square per bin
        band = spec[self._band]
        band_power = float(band.sum())
        ratio = band_power / (float(spec.sum()) + 1e-20)
        level_db = 10.0 * math.log10(band_power + 1e-12)
        # Geometric / arithmetic mean: ~0.5+ for noise, low for harmonic (voiced) speech.
        flatness = float(np.exp(np.mean(np.log(band + 1e-20))) / (band.mean() + 1e-20))
        return level_db, ratio, flatness

    def _update(self, features: tuple[float, float, float]) -> float:
        level_db, ratio, flatness = features
        # Level adaptation: running peak with slow decay, floored so silence is not boosted.
        self._peak = max(level_db, self._peak - self._peak_decay)
        open_db = max(self._peak, _REF_FLOOR_DB) - _OPEN_BELOW_PEAK_DB
        raw = (level_db - (open_db - _RANGE_DB)) / _RANGE_DB
        raw = min(max(raw, 0.0), 1.0)
        # Absolute gate with a soft knee: low noise floors never open the mouth.
        raw *= min(max((level_db - _GATE_DB) / _GATE_RAMP_DB, 0.0), 1.0)
        # Noise-like (flat) spectra open the mouth less than voiced sounds.
        raw *= 1.0 - 0.6 * min(max((flatness - 0.25) / 0.35, 0.0), 1.0)
        # Sounds whose power is mostly below the speech band (hum, its onset click, nasals
        # and voiced closures like m/b/n) keep the mouth (nearly) closed.
        raw *= min(max((ratio - 0.02) / 0.25, 0.0), 1.0)
        # Ease-in curve: mid-level sounds (consonants, syllable edges) open less, which
        # deepens the dips between syllables without saturating the vowels.
        raw = raw**1.5
        a = self._a_attack if raw > self._level else self._a_release
        self._level += a * (raw - self._level)
        if self._level < 1e-4:
            self._level = 0.0
        return float(min(max(self._level, 0.0), 1.0))
