"""Phones -> mouth shapes (visemes), with coarticulation and smoothing.

Viseme numbers (the VISEME output of the Triton model):
  1 REST, 2 CLOSED (M/B/P), 3 OPEN (AA), 4 WIDE (EE), 5 ROUNDED (O), 6 PUCKERED (U/W/OO),
  7 FV, 8 L.

The mapping follows Rhubarb Lip Sync's rules folded onto this set: bilabials close the lips
(with a closure of 40-120 ms that ends at the release), F/V put the lower lip under the upper
teeth, open vowels open the jaw, front vowels spread the lips, back vowels round them, and
consonants without their own lip shape (T D K G N S Z ...) take the shape of the neighbouring
vowel (anticipatory coarticulation: the next vowel within 150 ms wins, else the previous one).

Each viseme also has render weights ``(jaw, spread, round, press, fv)``: ``jaw`` scales the
signal-driven jaw opening, the others drive MouthRenderer's basis poses. ``ShapeSmoother``
eases between them per frame (no flutter) while letting a closure land on time.

Shared by talking_avatar (this file) and audio_analysis (audio_analysis/1/visemes.py is a
relative symlink to it: the analysis reports the same mouth shapes, by the same numbers).
"""

from __future__ import annotations

import math

import numpy as np

REST, CLOSED, OPEN, WIDE, ROUNDED, PUCKERED, FV, L = range(1, 9)
NAMES = {
    REST: "REST",
    CLOSED: "CLOSED",
    OPEN: "OPEN",
    WIDE: "WIDE",
    ROUNDED: "ROUNDED",
    PUCKERED: "PUCKERED",
    FV: "FV",
    L: "L",
}

PHONE_VISEME = {
    **dict.fromkeys(("M", "B", "P"), CLOSED),
    **dict.fromkeys(("F", "V"), FV),
    **dict.fromkeys(("AA", "AE", "AH", "AY", "AW", "EH"), OPEN),
    **dict.fromkeys(("IY", "IH", "EY", "Y"), WIDE),
    **dict.fromkeys(("AO", "OW", "OY", "ER", "R", "SH", "ZH", "CH", "JH"), ROUNDED),
    **dict.fromkeys(("UW", "UH", "W"), PUCKERED),
    "L": L,
    "SIL": REST,
}
# Consonants whose lips follow the neighbouring vowel.
NEUTRAL = frozenset(("T", "D", "K", "G", "N", "NG", "S", "Z", "TH", "DH", "HH"))
VOWEL_LIKE = frozenset(v for p, v in PHONE_VISEME.items() if v not in (REST, CLOSED, FV))

# Render weights per viseme: jaw scale, spread, round, press, F/V.
WEIGHTS = {
    REST: (0.0, 0.0, 0.0, 0.0, 0.0),
    CLOSED: (0.0, 0.0, 0.0, 1.0, 0.0),
    OPEN: (1.0, 0.15, 0.0, 0.0, 0.0),
    WIDE: (0.55, 1.0, 0.0, 0.0, 0.0),
    ROUNDED: (0.75, 0.0, 0.6, 0.0, 0.0),
    PUCKERED: (0.4, 0.0, 1.0, 0.0, 0.0),
    FV: (0.12, 0.2, 0.0, 0.0, 1.0),
    L: (0.65, 0.35, 0.0, 0.0, 0.0),
}

CLOSURE_MIN_S = 0.04
CLOSURE_MAX_S = 0.12
COARTIC_S = 0.15  # how far a neutral consonant looks for its vowel


def closure_interval(start: float, end: float) -> tuple[float, float]:
    """Lip closure of a bilabial segment: ends at the release, 40-120 ms long."""
    length = min(max(end - start, CLOSURE_MIN_S), CLOSURE_MAX_S)
    return end - length, end


def frame_viseme(segments: list[tuple[str, float, float]], t0: float, t1: float) -> int:
    """Viseme of the frame interval [t0, t1) from phone segments near it (time-sorted)."""
    near = [s for s in segments if s[2] > t0 - COARTIC_S and s[1] < t1 + COARTIC_S]
    if not near:
        return REST
    frame = t1 - t0
    # Bilabial closures win when they cover enough of the frame (a closure >= 40 ms always
    # marks at least one frame at <= 25 fps, and two frames at 50 fps).
    for phone, s, e in near:
        if PHONE_VISEME.get(phone) == CLOSED:
            c0, c1 = closure_interval(s, e)
            overlap = min(c1, t1) - max(c0, t0)
            if overlap >= min(0.5 * frame, 0.5 * (c1 - c0)) - 1e-9:
                return CLOSED
    # The segment that covers most of the frame.
    best, best_ov = None, 0.0
    for seg in near:
        ov = min(seg[2], t1) - max(seg[1], t0)
        if ov > best_ov:
            best, best_ov = seg, ov
    if best is None:
        return REST
    phone, s, e = best
    if phone in NEUTRAL:
        nxt = [x for x in near if x[1] >= e - 1e-9 and x[1] < e + COARTIC_S]
        for x in nxt:
            v = PHONE_VISEME.get(x[0])
            if v in VOWEL_LIKE:
                return v
            if x[0] not in NEUTRAL:
                break
        prv = [x for x in near if x[2] <= s + 1e-9 and x[2] > s - COARTIC_S]
        for x in reversed(prv):
            v = PHONE_VISEME.get(x[0])
            if v in VOWEL_LIKE:
                return v
            if x[0] not in NEUTRAL:
                break
        return WIDE  # Rhubarb's "clenched teeth" consonant shape: slightly open, spread
    return PHONE_VISEME.get(phone, REST)


def consonant_jaw(segments: list[tuple[str, float, float]], t0: float, t1: float) -> float:
    """Jaw scale of the frame: 0.5 where a lip-neutral consonant covers most of it (the jaw
    nearly closes on T/D/K/S/N..., Rhubarb's "clenched teeth"; the lips keep the vowel's
    shape), else 1."""
    best, best_ov = None, 0.0
    for seg in segments:
        if seg[2] <= t0 or seg[1] >= t1:
            continue
        ov = min(seg[2], t1) - max(seg[1], t0)
        if ov > best_ov:
            best, best_ov = seg, ov
    return 0.5 if best is not None and best[0] in NEUTRAL else 1.0


class ShapeSmoother:
    """Per-frame easing of the render weights toward the current viseme's.

    Opening and shape changes ease with a ~35 ms time constant (two neighbouring frames at
    25 fps blend, which removes flutter from one-frame label changes); a closure (press) is
    applied at once and the jaw scale follows it to 0 on that frame, so lips meet on time.
    """

    def __init__(self, fps: float, tau_s: float = 0.035):
        self._a = 1.0 - math.exp(-1.0 / (fps * tau_s))
        self._w = np.zeros(5)

    def step(self, viseme: int, expression: float = 1.0) -> np.ndarray:
        target = np.array(WEIGHTS[viseme], dtype=np.float64)
        target[1:3] *= expression
        target[4] = min(target[4] * max(expression, 0.6), 1.0)
        self._w += self._a * (target - self._w)
        if viseme == CLOSED:
            self._w[0] = 0.0
            self._w[3] = 1.0
        if viseme == REST:  # back to rest quickly: at most ~2 frames of easing at 25 fps
            self._w[3] = 0.0
            self._w *= 0.5
            self._w[self._w < 0.05] = 0.0
        self._w[np.abs(self._w) < 1e-4] = 0.0
        return self._w.copy()
