"""What the pipeline needs from an inference backend, in domain types only.

The pipeline talks to the ``Backend`` protocol; ``inference.triton.TritonBackend`` implements it
on Triton (and is the only place that knows Triton's tensor names), and the service-tier tests
stand a fake in for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from a2v_server.domain import Analysis

#: monotonic time by which the current call must be done: the caller's gRPC deadline, set by
#: the servicer and passed on to every Triton call made for it (a context variable, so the
#: pipeline's tasks see it without threading it through every signature)
call_deadline: ContextVar[float | None] = ContextVar("a2v_call_deadline", default=None)


def remaining_seconds(cap: float | None = None) -> float | None:
    """Seconds left until the call's deadline (at most ``cap``), or ``cap`` without one."""
    deadline = call_deadline.get()
    if deadline is None:
        return cap
    left = max(0.001, deadline - time.monotonic())
    return left if cap is None else min(cap, left)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (68, 2)
    #: the dense face mesh (478, 3): x, y in the same pixels as ``landmarks``, z the depth on
    #: the x scale (smaller = nearer); None when the face model does not give one
    mesh: np.ndarray | None = None


@dataclass(frozen=True)
class AvatarOptions:
    """Per-sequence settings of a talking-avatar render (None = the model's default)."""

    fps: float
    seed: int
    expression_scale: float | None = None
    head_motion_scale: float | None = None
    blink_rate: float | None = None
    #: English text of the speech, for forced alignment ("" = recognise phones)
    transcript: str = ""


@dataclass(frozen=True)
class LipsyncOptions:
    """Per-sequence settings of a lipsync render."""

    fps: float
    #: which face to re-animate: the n-th largest, or the one overlapping ``face_box`` most
    face_index: int = 0
    face_box: tuple[float, float, float, float] | None = None
    #: the colour matrix of frames sent as packed I420 (AVCOL_SPC: 1 BT.709, 6 BT.601)
    colour_matrix: int = 1


@dataclass(frozen=True)
class AnalysisOptions:
    """What to analyse in an audio (the audio_analysis model)."""

    #: rate of the jaw-opening curve
    fps: float = 25.0
    #: English text of the speech, for forced alignment ("" = recognise phones)
    transcript: str = ""
    #: parts to compute, of "kind", "voice", "phones", "jaw", "beats"; empty = all
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameBatch:
    first_index: int
    #: (n, H, W, 3) uint8 RGB; lipsync frames sent as I420: (n, H * 3 / 2, W) packed I420
    frames: np.ndarray
    mouth_open: np.ndarray  # (n,)
    #: optional side outputs (None when the model does not produce them)
    viseme: np.ndarray | None = None  # (n,) a2v.v1.Viseme numbers
    head_pose: np.ndarray | None = None  # (n, 3) yaw, pitch, roll degrees
    blink: np.ndarray | None = None  # (n,)
    audio_kind: int = 0  # a2v.v1.AudioKind number
    face_found: np.ndarray | None = None  # (n,) lipsync: 0 = frame passed through
    #: (n,) lipsync: how each mouth was made, a MouthSource number (older models: None)
    mouth_source: np.ndarray | None = None
    #: when set, ``frames`` are only this part (x0, y0, x1, y1) of the picture
    region: tuple[int, int, int, int] | None = None
    #: (n, 4) lipsync: the followed face's box per frame (zeros where none was found)
    face_boxes: np.ndarray | None = None
    #: (n,) lipsync: tracking confidence 0..1 per frame (0 without a face; older models: None)
    face_score: np.ndarray | None = None
    #: several speakers: one batch per face (same frames), each with its own region and
    #: pixels, all pasted (speakers.py); ``frames`` is then the first part's
    parts: tuple[FrameBatch, ...] | None = None
    #: (n,) a part of several: whether its pixels are shown in each frame
    shown: np.ndarray | None = None


class ModelStream(Protocol):
    """One streaming generation on a decoupled, stateful model."""

    @property
    def takes_i420(self) -> bool:
        """lipsync: the model takes its frames as packed I420 (h * 3 / 2, w) and answers in
        I420; otherwise RGB (h, w, 3) both ways."""
        ...

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
        origin: tuple[int, int] | None = None,
    ) -> None:
        """Queue audio; lipsync also sends video frames (crops whose top-left pixel is at
        ``origin`` in the frame; whole frames without it) and their source indices."""

    def batches(self) -> AsyncGenerator[FrameBatch, None]: ...
    async def aclose(self) -> None: ...


class Backend(Protocol):
    async def ready(self, models: tuple[str, ...]) -> bool: ...
    async def lookahead_seconds(self, model: str) -> float: ...
    async def analyze_faces(self, image: np.ndarray) -> list[Face]: ...
    async def open_avatar(
        self,
        portrait: np.ndarray,
        landmarks: np.ndarray,
        options: AvatarOptions,
        *,
        mesh: np.ndarray | None = None,
        start_frame: int = 0,
    ) -> ModelStream:
        """``start_frame``: the output starts at that frame (a range of the clip); the audio
        still starts at the clip's start, and the frames are the same as a whole clip's."""
        ...

    async def open_lipsync(self, options: LipsyncOptions) -> ModelStream: ...
    async def analyze_audio(self, samples: np.ndarray, options: AnalysisOptions) -> Analysis:
        """What the models hear in ``samples`` (mono, MODEL_SAMPLE_RATE)."""
        ...

    async def aclose(self) -> None: ...
