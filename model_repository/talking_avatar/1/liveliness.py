"""A living portrait: blinks, head motion and eyebrow raises, per frame and deterministic.

Everything is a function of the frame index, the audio features handed in and a
``numpy.random.Generator`` seeded with SEED: same seed and audio -> identical values.

* Blinks: intervals drawn from a gamma distribution (shape 3, mean 60 / rate s; human blinks
  are quasi-regular with a long tail), a blink = 80 ms closing (ease-in), 40 ms closed,
  150 ms opening (ease-out). rate 0 -> none.
* Head pose (yaw, pitch, roll degrees), every component bounded and centred:
  - speech: slow seeded sways (sums of sinusoids at 0.1-0.6 Hz, zero mean) plus nods on
    loudness emphasis, all multiplied by a speech-activity envelope that returns to 0 in
    silence (release 70 ms: the head is back at rest when the speaker stops, as the mouth);
  - music: a nod locked to the beat phase (down on the beat) and a roll sway over two beats;
  - effects: a damped jolt on every strong onset.
  The pose passes through a critically damped spring and is clipped to +-6/5/4 degrees.
* Eyebrows 0..1: raised on loudness emphasis (speech) and onsets (music/effects).
All amplitudes scale with HEAD_MOTION_SCALE / EXPRESSION_SCALE (0..2).
"""

from __future__ import annotations

import math

import numpy as np

_LIMITS = np.array([6.0, 5.0, 4.0])  # |yaw|, |pitch|, |roll| degrees


class Blinks:
    CLOSE_S, HOLD_S, OPEN_S = 0.08, 0.04, 0.15

    def __init__(self, rate_per_min: float, rng: np.random.Generator):
        self._rng = rng
        self._mean = 60.0 / rate_per_min if rate_per_min > 0 else math.inf
        self._starts: list[float] = []
        self._next = rng.uniform(0.6, 1.0) * min(self._mean, 4.0) if self._mean < math.inf else None

    def _extend(self, t: float) -> None:
        while self._next is not None and self._next <= t:
            self._starts.append(self._next)
            gap = self._rng.gamma(3.0, self._mean / 3.0)
            self._next += max(gap, self.CLOSE_S + self.HOLD_S + self.OPEN_S + 0.25)
        if len(self._starts) > 4:
            del self._starts[:-4]

    def value(self, t: float) -> float:
        """Eyelid closure 0 (open) .. 1 (closed) at time t; t must not decrease."""
        self._extend(t)
        v = 0.0
        for s in self._starts:
            d = t - s
            if d < 0:
                continue
            if d < self.CLOSE_S:
                x = d / self.CLOSE_S
                v = max(v, x * x)
            elif d < self.CLOSE_S + self.HOLD_S:
                v = 1.0
            elif d < self.CLOSE_S + self.HOLD_S + self.OPEN_S:
                x = (d - self.CLOSE_S - self.HOLD_S) / self.OPEN_S
                v = max(v, (1.0 - x) ** 2)
        return v


class Liveliness:
    def __init__(
        self,
        fps: float,
        seed: int,
        head_scale: float = 1.0,
        expression: float = 1.0,
        blink_rate: float = 15.0,
    ):
        rng = np.random.default_rng(seed)
        self.fps = fps
        self.head_scale = head_scale
        self.expression = expression
        self.blinks = Blinks(blink_rate, np.random.default_rng(rng.integers(1 << 62)))
        # Sway: 3 sinusoids per axis, seeded frequencies and phases; amplitudes in degrees.
        self._freq = rng.uniform(0.1, 0.6, size=(3, 3))
        self._phase = rng.uniform(0, 2 * math.pi, size=(3, 3))
        self._amp = np.array([1.6, 0.9, 0.8])[:, None] * np.array([0.6, 0.3, 0.15])[None, :]
        dt = 1.0 / fps
        self._a_act_up = 1.0 - math.exp(-dt / 0.25)
        self._a_act_down = 1.0 - math.exp(-dt / 0.07)
        self._a_brow_up = 1.0 - math.exp(-dt / 0.08)
        self._a_brow_down = 1.0 - math.exp(-dt / 0.30)
        self._activity = 0.0
        self._music = 0.0
        self._brow = 0.0
        self._jolt = np.zeros(3)
        self._jolt_v = np.zeros(3)
        self._pose = np.zeros(3)
        self._vel = np.zeros(3)
        self._omega = 2 * math.pi * 2.5  # spring: critically damped, ~0.1 s settle
        self._dt = dt

    def step(
        self,
        t: float,
        speaking: bool,
        emphasis: float,
        beat: tuple[float, float] | None,
        music: bool,
        onset: float,
    ) -> tuple[np.ndarray, float, float]:
        """One frame at time t: returns (pose[3] degrees, blink 0..1, brow 0..1)."""
        a = self._a_act_up if speaking else self._a_act_down
        self._activity += a * (float(speaking) - self._activity)
        if self._activity < 1e-3:
            self._activity = 0.0
        m_target = 1.0 if (music and beat is not None) else 0.0
        self._music += (self._a_act_up if m_target else self._a_act_down) * (m_target - self._music)

        target = np.zeros(3)
        sway = (self._amp * np.sin(2 * math.pi * self._freq * t + self._phase)).sum(1)
        target += self._activity * (sway + np.array([0.0, 1.5 * emphasis, 0.0]))
        if beat is not None and self._music > 0:
            phase, _period = beat
            nod = 0.5 + 0.5 * math.cos(2 * math.pi * phase)  # 1 on the beat
            sway = math.sin(2 * math.pi * phase)
            # +-3 degrees of pitch: the spring passes about half at 2 beats a second, which
            # is a bob of a few pixels at 512x512 (the quality bench measured +-1.1 as 0.3 px).
            target += self._music * np.array([0.8 * sway, 6.0 * nod - 3.0, 1.5 * sway])
        # Onset jolts (effects, and accents in music): a damped impulse, mostly pitch.
        if onset > 0:
            kick = min(onset, 1.0)
            self._jolt_v += np.array([0.3, 1.0, 0.4]) * kick * 25.0
        w = 2 * math.pi * 3.0
        self._jolt_v += (-(w * w) * self._jolt - 2 * w * self._jolt_v) * self._dt
        self._jolt += self._jolt_v * self._dt
        target += self._jolt
        target *= self.head_scale

        # Critically damped spring toward the target (semi-implicit Euler, sub-stepped).
        steps = max(1, math.ceil(self._dt / 0.01))
        h = self._dt / steps
        w = self._omega
        for _ in range(steps):
            self._vel += (w * w * (target - self._pose) - 2 * w * self._vel) * h
            self._pose += self._vel * h
        settled = np.all(np.abs(target) < 1e-3) and np.all(np.abs(self._pose) < 0.02)
        if not speaking and self._music == 0 and settled:
            self._pose[:] = 0.0
            self._vel[:] = 0.0
        self._pose = np.clip(self._pose, -_LIMITS, _LIMITS)

        brow_target = min(1.0, 0.8 * emphasis + 0.4 * min(onset, 1.0) * (1 - self._activity))
        brow_target *= self.expression
        a = self._a_brow_up if brow_target > self._brow else self._a_brow_down
        self._brow += a * (brow_target - self._brow)
        if self._brow < 1e-3:
            self._brow = 0.0
        return self._pose.copy(), self.blinks.value(t), float(min(self._brow, 2.0))
