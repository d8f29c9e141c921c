"""Domain types of a generation: the validated settings, input events and output events.

The servicer translates protobuf messages to and from these; the pipeline sees only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .media.fmp4 import Segment


@dataclass(frozen=True)
class GenerateSpec:
    """A validated GenerateConfig."""

    model: str
    request_id: str
    seed: int
    fps: float
    #: key of framing.ASPECTS, or None for the source's shape
    aspect: str | None
    #: short side of a resolution preset, or None when ``size`` is given
    short_side: int | None
    size: tuple[int, int] | None
    fit: str  # "crop" | "pad"
    prompt: str
    trim_start: float
    trim_end: float | None


# --- input events (client -> server, after the config) -----------------------------------------
@dataclass(frozen=True)
class ImagePiece:
    data: bytes


@dataclass(frozen=True)
class VideoPiece:
    data: bytes


@dataclass(frozen=True)
class EncodedAudioPiece:
    data: bytes


@dataclass(frozen=True)
class PcmAudioPiece:
    data: bytes
    sample_rate: int  # 0 = as declared before
    channels: int


@dataclass(frozen=True)
class EndOfInput:
    pass


InputEvent = ImagePiece | VideoPiece | EncodedAudioPiece | PcmAudioPiece | EndOfInput


# --- output events (server -> client) ------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    request_id: str
    model: str
    width: int
    height: int
    fps: float
    seed: int
    mime_type: str
    unused_prompt_words: tuple[str, ...]
    face_box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Chunk:
    sequence_number: int
    segment: Segment


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int
    audio_seconds: float


@dataclass(frozen=True)
class Timings:
    total: float = 0.0
    first_chunk: float = 0.0
    decode: float = 0.0
    inference: float = 0.0
    encode: float = 0.0


@dataclass(frozen=True)
class Summary:
    frames: int
    duration_seconds: float
    bytes: int
    chunks: int
    timings: Timings = field(default_factory=Timings)


OutputEvent = Accepted | Chunk | Progress | Summary
