"""The models a2v offers, and the Triton models behind each.

The one list of Triton model names: the launcher (``TRITON_MODELS``), the container command
(the Dockerfile loads every model of ``model_repository/``, a test checks that they agree),
health and the servicer follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import numpy as np

#: Triton model: face box and 68 landmarks of a still image (dlib)
FACE_MODEL = "face_landmarks"
#: Triton model: renders a talking head from audio and a portrait
AVATAR_MODEL = "talking_avatar"
#: Triton model: re-animates the mouth of a speaker video to new audio
LIPSYNC_MODEL = "lipsync"
#: Triton model: what the models hear in an audio, without rendering (the Analyze rpc, and
#: the beat grid of Generate's timeline)
ANALYSIS_MODEL = "audio_analysis"


class InputKind(Enum):
    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class OfferedModel:
    """A model a2v offers to callers (ListModels), and the Triton models behind it."""

    name: str
    description: str
    inputs: tuple[InputKind, ...]
    native_fps: float
    #: resolution presets (short side in pixels) the model renders
    presets: tuple[int, ...]
    accepts_prompt: bool
    #: Triton models this one needs loaded and ready
    triton_models: tuple[str, ...]
    #: the Triton model (one of ``triton_models``) that renders the frames
    renderer: str

    def __post_init__(self) -> None:
        if self.renderer not in self.triton_models:
            raise ValueError(f"{self.name}: renderer {self.renderer!r} is not in triton_models")


TALKING_AVATAR = OfferedModel(
    name="talking_avatar",
    description=(
        "Talking head from a still portrait: the mouth and jaw follow the speech "
        "(a landmark-driven thin-plate-spline warp), closed in silence."
    ),
    inputs=(InputKind.AUDIO, InputKind.IMAGE),
    native_fps=25.0,
    presets=(480, 720, 1080),
    accepts_prompt=True,  # camera, look and delivery words (look.py)
    triton_models=(FACE_MODEL, AVATAR_MODEL),
    renderer=AVATAR_MODEL,
)

LIPSYNC = OfferedModel(
    name="lipsync",
    description=(
        "Lipsync on a speaker video: the face is tracked through the video and only the mouth "
        "and jaw are re-animated to the new audio; the source frame rate is kept."
    ),
    inputs=(InputKind.AUDIO, InputKind.VIDEO),
    native_fps=0.0,  # the source video's rate
    presets=(480, 720, 1080),
    accepts_prompt=True,  # camera and look words (look.py)
    triton_models=(FACE_MODEL, LIPSYNC_MODEL),
    renderer=LIPSYNC_MODEL,
)

MODELS: dict[str, OfferedModel] = {m.name: m for m in (TALKING_AVATAR, LIPSYNC)}
DEFAULT_MODEL = TALKING_AVATAR.name

#: every Triton model an offered model needs, each once, in the order they are first named;
#: what the launcher loads, what health waits for, exactly the folders of model_repository/
TRITON_MODELS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*(name for model in MODELS.values() for name in model.triton_models), ANALYSIS_MODEL]
    )
)

#: the audio every Triton model takes: mono float32 at this rate (the server resamples to it)
MODEL_SAMPLE_RATE = 16000


def frame_count(samples: int, fps: float) -> int:
    """Video frames for ``samples`` of audio at the model rate, at ``fps``: the nearest whole
    number, halves rounded up, computed exactly on the float32 value of ``fps`` (the FPS tensor
    the models get). The models count with the same rule (model_repository/talking_avatar/1/
    shared.py ``frame_count``; a test compares them), so both always agree on a clip's length."""
    exact = Fraction(int(samples)) * Fraction(float(np.float32(fps))) / MODEL_SAMPLE_RATE
    return math.floor(exact + Fraction(1, 2))
