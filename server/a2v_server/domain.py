"""Domain types of a generation: the validated settings, input events and output events.

The servicer translates protobuf messages to and from these; the pipeline sees only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from a2v_server.media.fmp4 import Segment

#: output frame rates the service renders; lipsync keeps its source's rate, within the same range
MIN_FPS, MAX_FPS = 1, 60
DEFAULT_FPS = 25.0
#: expression and head-motion scales multiply the model's own motion (1 = as it is)
MAX_MOTION_SCALE = 2.0
#: blinks per minute
MAX_BLINK_RATE = 60.0
#: upper bound of each optional animation setting (all start at 0)
ANIMATION_RANGES = {
    "expression_scale": MAX_MOTION_SCALE,
    "head_motion_scale": MAX_MOTION_SCALE,
    "blink_rate": MAX_BLINK_RATE,
}


@dataclass(frozen=True)
class Speaker:
    """One face of several that speak (GenerateConfig.speakers / channel_speakers)."""

    #: which face: the n-th largest, or the one overlapping ``face_box`` most (input pixels)
    face_index: int = 0
    face_box: tuple[float, float, float, float] | None = None
    #: when it speaks: (start, end) seconds of the audio (end None: to the end) ...
    turns: tuple[tuple[float, float | None], ...] = ()
    #: ... or where this channel of the audio is the loudest
    channel: int | None = None


@dataclass(frozen=True)
class GenerateSpec:
    """A validated GenerateConfig."""

    model: str
    request_id: str
    seed: int
    fps: float
    #: key of framing.ASPECTS, or None for the source's shape
    aspect: str | None
    #: short side of a resolution preset; None with ``size``, with ``source_size``, or unset
    #: (the model's default: the source's size for lipsync, 720p for the others)
    short_side: int | None
    size: tuple[int, int] | None
    fit: str  # "crop" | "pad"
    prompt: str
    trim_start: float
    trim_end: float | None
    transcript: str = ""
    #: None = model default
    expression_scale: float | None = None
    head_motion_scale: float | None = None
    blink_rate: float | None = None
    include_timeline: bool = False
    resumable: bool = False
    #: lipsync: "bounce" | "loop" | "cut_off" | "silence" | "remap"
    sync_mode: str = "bounce"
    face_index: int = 0
    #: lipsync: x0, y0, x1, y1 in source video pixels
    face_box: tuple[float, float, float, float] | None = None
    #: RESOLUTION_PRESET_SOURCE: the visual input's own size, not rescaled
    source_size: bool = False
    #: GenerateConfig.range: render only [start, end) seconds of the clip (end None: to its
    #: end); None: the whole clip
    render_range: tuple[float, float | None] | None = None
    #: several speakers (one model stream each); empty: one, ``face_index`` / ``face_box``
    speakers: tuple[Speaker, ...] = ()


# --- input events (client -> server, after the config) -----------------------------------------
@dataclass(frozen=True)
class ImagePiece:
    data: bytes


@dataclass(frozen=True)
class RawFrame:
    """One uncompressed video frame (RawVideoFrame in the contract); 0 and "" = as before."""

    data: bytes
    format: str  # "i420", "rgb24", or "" (unspecified)
    width: int
    height: int
    frame_rate: float
    time_us: int


@dataclass(frozen=True)
class VideoPiece:
    data: bytes
    last: bool = False  # no video follows (the end message says so too)
    frame: RawFrame | None = None  # an uncompressed frame instead of file bytes


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
class DetectedFace:
    """A face in the visual input (its own pixels): ListFaces and Accepted.faces."""

    index: int
    box: tuple[float, float, float, float]
    score: float
    first_seconds: float = 0.0
    last_seconds: float = 0.0
    visible_seconds: float = 0.0


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
    #: settings given that have no effect, each "field.path: why" (pipeline/honoured.py)
    ignored_settings: tuple[str, ...] = ()
    #: settings used but probably not as meant, each "field.path: why"
    warnings: tuple[str, ...] = ()
    #: the range after snapping to keyframes: start, end seconds (0 = the audio's end)
    render_range: tuple[float, float] | None = None
    #: every face found in the visual input, largest first (its own pixels)
    faces: tuple[DetectedFace, ...] = ()


@dataclass(frozen=True)
class FragmentReport:
    """How a fragment's frames came out (MediaChunk.report; pipeline/report.py)."""

    frames: int
    face_share: float = 0.0
    tracking_confidence: float = 0.0
    sync_agreement: float = 0.0
    face_lost: bool = False
    cut: bool = False
    looped: bool = False


@dataclass(frozen=True)
class Chunk:
    sequence_number: int
    segment: Segment
    #: fragments: how their frames came out (None for the init segment)
    report: FragmentReport | None = None


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int
    audio_seconds: float


@dataclass(frozen=True)
class TimelineFrame:
    index: int
    time_seconds: float
    mouth_open: float
    viseme: int = 0  # a2v.v1.Viseme number, 0 = unknown
    head_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # yaw, pitch, roll in degrees
    blink: float = 0.0


@dataclass(frozen=True)
class Timeline:
    frames: tuple[TimelineFrame, ...]
    #: the audio's beat grid, once, after every frame (include_timeline)
    beat_grid: BeatGrid | None = None


@dataclass(frozen=True)
class Timings:
    total: float = 0.0
    first_chunk: float = 0.0
    decode: float = 0.0
    inference: float = 0.0
    encode: float = 0.0


@dataclass(frozen=True)
class MouthSources:
    """lipsync: how many frames took each path of the model (its MOUTH_SOURCE output)."""

    passed_through: int = 0  # no face: the source frame as it was
    warped: int = 0  # the mouth re-animated by the warp
    retrieved: int = 0  # an open mouth from the speaker's own video pasted in


@dataclass(frozen=True)
class Summary:
    frames: int
    duration_seconds: float
    bytes: int
    chunks: int
    timings: Timings = field(default_factory=Timings)
    #: a2v.v1.AudioKind number as judged by the model, 0 = unknown
    audio_kind: int = 0
    #: lipsync models that report MOUTH_SOURCE; None otherwise
    mouth_sources: MouthSources | None = None
    #: what was met while rendering (Summary.warnings): "field: why"
    warnings: tuple[str, ...] = ()


OutputEvent = Accepted | Chunk | Progress | Summary | Timeline


# --- Analyze -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalyzeSpec:
    """A validated AnalyzeConfig."""

    request_id: str
    trim_start: float
    trim_end: float | None
    transcript: str = ""
    #: rate of the jaw-opening curve
    fps: float = DEFAULT_FPS


@dataclass(frozen=True)
class BeatGrid:
    tempo_bpm: float = 0.0  # 0: no steady beat
    beats: tuple[float, ...] = ()
    downbeats: tuple[float, ...] = ()
    beats_per_bar: int = 4
    confidence: float = 0.0


@dataclass(frozen=True)
class Span:
    """A labelled time range: an audio kind (AudioKind number), a phone or a viseme number."""

    label: int | str
    start: float
    end: float


@dataclass(frozen=True)
class Analysis:
    """What the models hear in an audio (the audio_analysis model's answer)."""

    duration_seconds: float
    kind: int  # a2v.v1.AudioKind number
    segments: tuple[Span, ...]  # label: AudioKind number
    voiced: tuple[tuple[float, float], ...]
    phones: tuple[Span, ...]  # label: ARPAbet phone
    visemes: tuple[Span, ...]  # label: a2v.v1.Viseme number
    aligned: bool
    jaw_fps: float
    jaw_open: tuple[float, ...]
    beat_grid: BeatGrid
    onsets: tuple[float, ...]
