"""Streaming audio -> per-frame animation parameters (mouth, visemes, head, eyes, brows, kind).

One ``Animator`` per generation. ``push(samples)`` returns the frames that the audio so far
makes computable; ``finish()`` returns the rest. Frame ``i`` (time ``t_i = i / fps``) is
returned once the total audio reaches ``t_i + LOOKAHEAD_S`` (exact rational arithmetic), and
before it is computed every analyser is advanced to *exactly* that sample count, each in its
own fixed blocks (VAD 32 ms, phones 80 ms, onsets 10 ms, MouthMotion per frame). So a frame
depends only on the audio up to ``t_i + LOOKAHEAD_S``, never on later audio nor on how the
audio was split into pushes (test_animator.py checks both).

Lookahead budget (LOOKAHEAD_S = 0.24 s): the phone recogniser's partial path is reliable
~100 ms behind its front and coarticulation looks 150 ms ahead of a frame's end; VAD needs 50 ms
beyond the frame plus its 32 ms window; a beat is confirmed a quarter period after it happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from audio_kind import MUSIC, AudioKind
from beats import HOP, BeatTracker
from liveliness import Liveliness
from mouth_motion import MouthMotion
from phones import PhoneTracker
from shared import SAMPLE_RATE, frame_count
from visemes import CLOSED, OPEN, REST, ShapeSmoother, consonant_jaw, frame_viseme
from voice_activity import VoiceActivity

LOOKAHEAD_S = 0.24
_DEAD_ZONE = 0.08  # jaw openings below this render as closed


@dataclass
class Frame:
    index: int
    openness: float  # jaw opening 0..1 (MOUTH_OPEN)
    viseme: int  # visemes.REST .. visemes.L (VISEME)
    shapes: np.ndarray  # basis weights (spread, round, press, fv) for MouthRenderer
    pose: np.ndarray  # yaw, pitch, roll degrees (HEAD_POSE)
    blink: float  # 0 open .. 1 closed (BLINK)
    brow: float  # eyebrow raise 0..~2
    kind: int  # audio_kind.SPEECH / MUSIC / OTHER judged so far


class Animator:
    def __init__(
        self,
        fps: float,
        seed: int = 0,
        expression_scale: float = 1.0,
        head_motion_scale: float = 1.0,
        blink_rate: float = 15.0,
        transcript: str | None = None,
    ):
        self.fps = float(fps)
        self.sr = SAMPLE_RATE
        self.lookahead_seconds = LOOKAHEAD_S
        self.expression = float(expression_scale)
        self._hop = Fraction(self.sr) / Fraction(self.fps)
        self._ready_off = Fraction(LOOKAHEAD_S).limit_denominator(1000) * self.sr
        self.motion = MouthMotion(self.sr, self.fps)
        self.vad = VoiceActivity()
        self.phones = PhoneTracker(transcript)
        self.beats = BeatTracker(self.sr)
        self.kind = AudioKind()
        self.live = Liveliness(self.fps, seed, head_motion_scale, self.expression, blink_rate)
        self.smoother = ShapeSmoother(self.fps)
        self._buf = np.zeros(0, np.float32)  # received, not yet fed to the analysers
        self._received = 0
        self._fed = 0
        self._open_q: list[float] = []
        self._next = 0
        self._kind_hop = 0
        self._gate = 0.0
        self._loud_avg: float | None = None
        self._onset_avg = 0.0
        self._finished = False

    # ------------------------------------------------------------------------------------------
    def _ready(self, i: int) -> int:
        return math.ceil(i * self._hop + self._ready_off)

    def push(self, samples: np.ndarray) -> list[Frame]:
        if self._finished:
            raise RuntimeError("push() after finish()")
        x = np.asarray(samples, np.float32).reshape(-1)
        if x.size:
            self._buf = np.concatenate((self._buf, x))
            self._received += x.size
        out = []
        while self._ready(self._next) <= self._received:
            self._feed(self._ready(self._next))
            out.append(self._frame())
        return out

    def finish(self) -> list[Frame]:
        if self._finished:
            return []
        self._feed(self._received)
        self.vad.flush()
        self.phones.flush()
        self.beats.flush()
        self._open_q.extend(self.motion.finish().tolist())
        self._finished = True
        total = frame_count(self._received, self.fps)
        return [self._frame() for _ in range(max(0, total - self._next))]

    def _feed(self, upto: int) -> None:
        n = upto - self._fed
        if n <= 0:
            return
        x, self._buf = self._buf[:n], self._buf[n:]
        self._fed = upto
        self._open_q.extend(self.motion.push(x).tolist())
        self.vad.push(x)
        self.phones.push(x)
        self.beats.push(x)
        self._classify()

    def _classify(self) -> None:
        b, v = self.beats, self.vad
        win = v.window_seconds
        while self._kind_hop < len(b.onset):
            t = b.hop_time(self._kind_hop)
            k = int(max(t, 0.0) / win)
            if k >= len(v.voiced):
                break
            self.kind.add_hop(b.level_db[self._kind_hop], b.flatness[self._kind_hop], v.voiced[k])
            self._kind_hop += 1
        self.kind.update(b.periodicity)

    # ------------------------------------------------------------------------------------------
    def _frame(self) -> Frame:
        i = self._next
        self._next += 1
        t0, t1 = i / self.fps, (i + 1) / self.fps
        tc = 0.5 * (t0 + t1)
        sig = self._open_q.pop(0) if self._open_q else 0.0
        kind = self.kind.kind
        speaking = self.vad.voiced_near(t0 - 0.05, t1 + 0.05)

        # Mouth: the signal's jaw curve, shaped by the viseme, only where there is voice.
        if speaking:
            segments = self.phones.segments
            vis = frame_viseme(segments, t0, t1)
            sig *= consonant_jaw(segments, t0, t1)
            if vis == REST and sig > 0.05:
                vis = OPEN  # voice the phone path calls silence: follow the signal
        else:
            vis = REST
        w = self.smoother.step(vis, self.expression)
        a_gate = 0.6 if speaking else 0.75
        self._gate += a_gate * (float(speaking) - self._gate)
        if self._gate < 1e-3:
            self._gate = 0.0
        openness = 0.0 if vis == CLOSED else sig * w[0] * self._gate
        # Dead zone: slivers of opening between syllables read as flutter; shut them.
        openness = float(np.clip((openness - _DEAD_ZONE) / (1.0 - _DEAD_ZONE), 0.0, 1.0))
        if vis == REST and openness < 0.02:
            openness = 0.0

        # Loudness emphasis (nods, brows) and onsets, from the 10 ms hops of this frame.
        k0 = max(int(t0 * self.sr / HOP), 0)
        k1 = min(max(int(t1 * self.sr / HOP), k0 + 1), len(self.beats.level_db))
        level = max(self.beats.level_db[k0:k1], default=-120.0)
        emphasis = 0.0
        if speaking:
            if self._loud_avg is None:
                self._loud_avg = level
            self._loud_avg += (1.0 / (2.0 * self.fps)) * (level - self._loud_avg)
            emphasis = float(np.clip((level - self._loud_avg - 2.0) / 8.0, 0.0, 1.0))
        onset = self.beats.onset_near(t0, t1)
        kick = 0.0
        if self._onset_avg > 0 and not speaking:
            kick = float(np.clip((onset / self._onset_avg - 3.0) / 6.0, 0.0, 1.0))
        if level > -50.0:
            self._onset_avg += (1.0 / (3.0 * self.fps)) * (onset - self._onset_avg)
        beat = self.beats.beat_phase(tc) if kind == MUSIC else None
        if kind == MUSIC and beat is not None:
            kick *= 0.3  # the bob already follows the beat
        pose, blink, brow = self.live.step(tc, speaking, emphasis, beat, kind == MUSIC, kick)
        return Frame(
            index=i,
            openness=openness,
            viseme=int(vis),
            shapes=w[1:].astype(np.float32),
            pose=pose.astype(np.float32),
            blink=float(blink),
            brow=brow,
            kind=int(kind),
        )
