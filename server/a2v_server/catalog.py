"""The models a2v offers, and the Triton models behind each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class InputKind(Enum):
    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    inputs: tuple[InputKind, ...]
    native_fps: float
    #: resolution presets (short side in pixels) the model renders
    presets: tuple[int, ...]
    accepts_prompt: bool
    #: Triton models this one needs loaded and ready
    triton_models: tuple[str, ...]


TALKING_AVATAR = ModelSpec(
    name="talking_avatar",
    description=(
        "Talking head from a still portrait: the mouth and jaw follow the speech "
        "(landmark-driven mesh warp), closed in silence."
    ),
    inputs=(InputKind.AUDIO, InputKind.IMAGE),
    native_fps=25.0,
    presets=(480, 720, 1080),
    accepts_prompt=True,  # camera, look and delivery words (look.py)
    triton_models=("face_landmarks", "talking_avatar"),
)

LIPSYNC = ModelSpec(
    name="lipsync",
    description=(
        "Lipsync on a speaker video: the face is tracked through the video and only the mouth "
        "and jaw are re-animated to the new audio; the source frame rate is kept."
    ),
    inputs=(InputKind.AUDIO, InputKind.VIDEO),
    native_fps=0.0,  # the source video's rate
    presets=(480, 720, 1080),
    accepts_prompt=True,  # camera and look words (look.py)
    triton_models=("face_landmarks", "lipsync"),
)

MODELS: dict[str, ModelSpec] = {m.name: m for m in (TALKING_AVATAR, LIPSYNC)}
DEFAULT_MODEL = TALKING_AVATAR.name
