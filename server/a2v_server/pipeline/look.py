"""Prompt steering: camera motion, colour look and delivery from a free-text prompt.

The prompt is matched against a small, documented vocabulary (``VOCABULARY``); every word that
took no part in a match is reported back in Accepted.unused_prompt_words, so a caller knows
exactly what had no effect. Camera moves and looks are applied to the rendered frames on the
server (both models), deterministically for a given seed:

camera  static | slow zoom in | slow zoom out | pan left | pan right | handheld
look    warm | cool | black and white | film grain | high contrast
delivery (scales the model's facial and head motion)  calm / subtle | energetic / excited
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from a2v_server.catalog import InputKind, OfferedModel
from a2v_server.domain import MAX_MOTION_SCALE

#: phrase -> (kind, value). Longer phrases are matched first.
VOCABULARY: dict[str, tuple[str, str]] = {
    "static": ("camera", "static"), "locked off": ("camera", "static"),
    "still camera": ("camera", "static"),
    "slow zoom in": ("camera", "zoom_in"), "zoom in": ("camera", "zoom_in"),
    "zoom-in": ("camera", "zoom_in"), "push in": ("camera", "zoom_in"),
    "slow zoom out": ("camera", "zoom_out"), "zoom out": ("camera", "zoom_out"),
    "zoom-out": ("camera", "zoom_out"), "pull out": ("camera", "zoom_out"),
    "pan left": ("camera", "pan_left"), "pan right": ("camera", "pan_right"),
    "handheld": ("camera", "handheld"), "hand-held": ("camera", "handheld"),
    "shaky": ("camera", "handheld"),
    "warm": ("look", "warm"), "golden": ("look", "warm"),
    "cool": ("look", "cool"), "cold": ("look", "cool"),
    "black and white": ("look", "mono"), "black & white": ("look", "mono"),
    "monochrome": ("look", "mono"), "b&w": ("look", "mono"), "grayscale": ("look", "mono"),
    "film grain": ("look", "grain"), "grainy": ("look", "grain"), "grain": ("look", "grain"),
    "high contrast": ("look", "contrast"), "contrasty": ("look", "contrast"),
    "calm": ("delivery", "calm"), "subtle": ("delivery", "calm"), "gentle": ("delivery", "calm"),
    "serious": ("delivery", "calm"),
    "energetic": ("delivery", "lively"), "excited": ("delivery", "lively"),
    "animated": ("delivery", "lively"), "expressive": ("delivery", "lively"),
}  # fmt: skip
#: words that carry no instruction on their own and are never reported as unused
FILLER = {
    "a", "an", "the", "and", "with", "in", "of", "to", "camera", "look", "style", "slow",
    "slowly", "please", "very", "some", "bit", "little", "light", "lighting", "shot",
}  # fmt: skip
DELIVERY_SCALE = {"calm": 0.6, "lively": 1.5}
#: the kinds of phrase, in the order ModelInfo lists them
KINDS = ("camera", "look", "delivery")


def prompt_kinds(model: OfferedModel) -> tuple[str, ...]:
    """The kinds of phrase that affect ``model``: camera and look restyle the rendered frames of
    every model; delivery scales the facial and head motion that only the talking avatar
    generates (lipsync re-animates the mouth from the audio and keeps the speaker's own motion).
    """
    return KINDS if InputKind.IMAGE in model.inputs else ("camera", "look")


def prompt_effects(kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(kind, effect, phrases)`` for every effect of ``kinds``, kinds in ``KINDS`` order and
    effects and phrases in vocabulary order (what ModelInfo.prompt_effects lists)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for phrase, (kind, effect) in VOCABULARY.items():
        grouped.setdefault((kind, effect), []).append(phrase)
    return [
        (kind, effect, tuple(phrases))
        for k in kinds
        for (kind, effect), phrases in grouped.items()
        if kind == k
    ]


@dataclass(frozen=True)
class Steering:
    camera: str = "static"
    looks: tuple[str, ...] = ()
    #: multiplies expression and head-motion scales (1 = as configured)
    delivery: float = 1.0
    unused_words: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changes_frames(self) -> bool:
        return self.camera != "static" or bool(self.looks)

    def scaled(self, motion_scale: float | None) -> float | None:
        """A motion scale times the delivery factor (None, the model's default, stays None
        when the prompt asks for no change)."""
        if self.delivery == 1.0:
            return motion_scale
        return min(
            MAX_MOTION_SCALE, (1.0 if motion_scale is None else motion_scale) * self.delivery
        )


def parse_prompt(prompt: str, kinds: tuple[str, ...] = KINDS) -> Steering:
    """The steering a prompt asks for. Phrases of a kind not in ``kinds`` (see
    ``prompt_kinds``) are not matched: their words are reported unused."""
    text = " " + re.sub(r"\s+", " ", prompt.lower()) + " "
    camera, looks, delivery = "static", [], 1.0
    for phrase in sorted(VOCABULARY, key=len, reverse=True):
        if VOCABULARY[phrase][0] not in kinds:
            continue
        pattern = r"(?<![\w&-])" + re.escape(phrase) + r"(?![\w&-])"
        if re.search(pattern, text):
            kind, value = VOCABULARY[phrase]
            text = re.sub(pattern, " ", text)
            if kind == "camera" and camera == "static":
                camera = value
            elif kind == "look" and value not in looks:
                looks.append(value)
            elif kind == "delivery":
                delivery = DELIVERY_SCALE[value]
    unused: dict[str, None] = {}
    for word in re.findall(r"[\w'&-]+", text):
        if word not in FILLER:
            unused.setdefault(word, None)
    return Steering(camera, tuple(looks), delivery, tuple(unused))


class FrameStyler:
    """Applies a Steering to frame k of a clip (pure function of k, the seed and the frame)."""

    def __init__(
        self,
        steering: Steering,
        size: tuple[int, int],
        fps: float,
        seed: int,
        face_box: tuple[float, float, float, float],
    ) -> None:
        self.steering = steering
        self._w, self._h = size
        self._fps = fps
        self._seed = seed
        x0, y0, x1, y1 = face_box
        self._centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        rng = np.random.default_rng(seed)
        # handheld: a sum of slow sines with random phases (smooth, bounded, reproducible)
        self._phases = rng.uniform(0, 2 * np.pi, size=6)

    def apply(self, index: int, frame: np.ndarray) -> np.ndarray:
        if self.steering.camera != "static":
            frame = self._camera(index, frame)
        for look in self.steering.looks:
            frame = getattr(self, "_" + look)(index, frame)
        return frame

    def _camera(self, index: int, frame: np.ndarray) -> np.ndarray:
        t = index / self._fps
        cx, cy = self._centre
        move = self.steering.camera
        zoom, dx, dy, angle = 1.0, 0.0, 0.0, 0.0
        if move == "zoom_in":  # towards the face, 1.5 % per second, at most 1.25x
            zoom = min(1.25, 1.0 + 0.015 * t)
        elif move == "zoom_out":  # starts close and opens up to the full frame
            zoom = max(1.0, 1.25 - 0.015 * t)
        elif move in ("pan_left", "pan_right"):
            zoom = 1.12  # room to travel without showing an edge
            travel = min(1.0, t / 20.0) * (self._w * (1 - 1 / zoom) / 2)
            dx = travel if move == "pan_left" else -travel
        elif move == "handheld":
            zoom = 1.05
            p = self._phases
            dx = self._w * 0.006 * (np.sin(1.3 * t + p[0]) + 0.5 * np.sin(3.1 * t + p[1]))
            dy = self._h * 0.006 * (np.sin(1.1 * t + p[2]) + 0.5 * np.sin(2.7 * t + p[3]))
            angle = 0.4 * (np.sin(0.9 * t + p[4]) + 0.4 * np.sin(2.3 * t + p[5]))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
        matrix[:, 2] += np.array((dx, dy))
        return cv2.warpAffine(
            frame, matrix, (self._w, self._h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )

    def _warm(self, index: int, frame: np.ndarray) -> np.ndarray:
        return _channel_gain(frame, (1.08, 1.02, 0.88))

    def _cool(self, index: int, frame: np.ndarray) -> np.ndarray:
        return _channel_gain(frame, (0.9, 1.0, 1.1))

    def _mono(self, index: int, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return np.repeat(gray[..., None], 3, axis=2)

    def _contrast(self, index: int, frame: np.ndarray) -> np.ndarray:
        x = np.arange(256, dtype=np.float32) / 255.0
        curve = np.clip(0.5 + (x - 0.5) * 1.35, 0, 1)  # steeper mid-tones
        return cv2.LUT(frame, (curve * 255).astype(np.uint8))

    def _grain(self, index: int, frame: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng((self._seed, index))
        noise = rng.normal(0.0, 7.0, size=frame.shape[:2]).astype(np.float32)
        out = frame.astype(np.float32) + noise[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)


def _channel_gain(frame: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    lut = np.stack([np.clip(np.arange(256) * g, 0, 255) for g in gains], axis=1).astype(np.uint8)
    out = np.empty_like(frame)
    for c in range(3):
        out[..., c] = cv2.LUT(frame[..., c], lut[:, c])
    return out
