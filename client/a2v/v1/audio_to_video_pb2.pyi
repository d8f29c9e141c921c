from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_MODE_UNSPECIFIED: _ClassVar[SyncMode]
    SYNC_MODE_BOUNCE: _ClassVar[SyncMode]
    SYNC_MODE_LOOP: _ClassVar[SyncMode]
    SYNC_MODE_CUT_OFF: _ClassVar[SyncMode]
    SYNC_MODE_SILENCE: _ClassVar[SyncMode]
    SYNC_MODE_REMAP: _ClassVar[SyncMode]

class ResolutionPreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_PRESET_UNSPECIFIED: _ClassVar[ResolutionPreset]
    RESOLUTION_PRESET_480P: _ClassVar[ResolutionPreset]
    RESOLUTION_PRESET_720P: _ClassVar[ResolutionPreset]
    RESOLUTION_PRESET_1080P: _ClassVar[ResolutionPreset]
    RESOLUTION_PRESET_SOURCE: _ClassVar[ResolutionPreset]

class AspectRatio(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASPECT_RATIO_UNSPECIFIED: _ClassVar[AspectRatio]
    ASPECT_RATIO_1_1: _ClassVar[AspectRatio]
    ASPECT_RATIO_16_9: _ClassVar[AspectRatio]
    ASPECT_RATIO_9_16: _ClassVar[AspectRatio]
    ASPECT_RATIO_4_3: _ClassVar[AspectRatio]
    ASPECT_RATIO_3_4: _ClassVar[AspectRatio]
    ASPECT_RATIO_SOURCE: _ClassVar[AspectRatio]

class Fit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIT_UNSPECIFIED: _ClassVar[Fit]
    FIT_CROP: _ClassVar[Fit]
    FIT_PAD: _ClassVar[Fit]

class Container(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_UNSPECIFIED: _ClassVar[Container]
    CONTAINER_FMP4: _ClassVar[Container]

class VideoCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_CODEC_UNSPECIFIED: _ClassVar[VideoCodec]
    VIDEO_CODEC_H264: _ClassVar[VideoCodec]

class AudioCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_CODEC_UNSPECIFIED: _ClassVar[AudioCodec]
    AUDIO_CODEC_AAC: _ClassVar[AudioCodec]

class RawPixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RAW_PIXEL_FORMAT_UNSPECIFIED: _ClassVar[RawPixelFormat]
    RAW_PIXEL_FORMAT_I420: _ClassVar[RawPixelFormat]
    RAW_PIXEL_FORMAT_RGB24: _ClassVar[RawPixelFormat]

class Viseme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISEME_UNSPECIFIED: _ClassVar[Viseme]
    VISEME_REST: _ClassVar[Viseme]
    VISEME_CLOSED: _ClassVar[Viseme]
    VISEME_OPEN: _ClassVar[Viseme]
    VISEME_WIDE: _ClassVar[Viseme]
    VISEME_ROUNDED: _ClassVar[Viseme]
    VISEME_PUCKERED: _ClassVar[Viseme]
    VISEME_FV: _ClassVar[Viseme]
    VISEME_L: _ClassVar[Viseme]

class ChunkKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHUNK_KIND_UNSPECIFIED: _ClassVar[ChunkKind]
    CHUNK_KIND_INIT: _ClassVar[ChunkKind]
    CHUNK_KIND_FRAGMENT: _ClassVar[ChunkKind]

class AudioKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_KIND_UNSPECIFIED: _ClassVar[AudioKind]
    AUDIO_KIND_SPEECH: _ClassVar[AudioKind]
    AUDIO_KIND_MUSIC: _ClassVar[AudioKind]
    AUDIO_KIND_OTHER: _ClassVar[AudioKind]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_AUDIO: _ClassVar[InputKind]
    INPUT_KIND_IMAGE: _ClassVar[InputKind]
    INPUT_KIND_VIDEO: _ClassVar[InputKind]
SYNC_MODE_UNSPECIFIED: SyncMode
SYNC_MODE_BOUNCE: SyncMode
SYNC_MODE_LOOP: SyncMode
SYNC_MODE_CUT_OFF: SyncMode
SYNC_MODE_SILENCE: SyncMode
SYNC_MODE_REMAP: SyncMode
RESOLUTION_PRESET_UNSPECIFIED: ResolutionPreset
RESOLUTION_PRESET_480P: ResolutionPreset
RESOLUTION_PRESET_720P: ResolutionPreset
RESOLUTION_PRESET_1080P: ResolutionPreset
RESOLUTION_PRESET_SOURCE: ResolutionPreset
ASPECT_RATIO_UNSPECIFIED: AspectRatio
ASPECT_RATIO_1_1: AspectRatio
ASPECT_RATIO_16_9: AspectRatio
ASPECT_RATIO_9_16: AspectRatio
ASPECT_RATIO_4_3: AspectRatio
ASPECT_RATIO_3_4: AspectRatio
ASPECT_RATIO_SOURCE: AspectRatio
FIT_UNSPECIFIED: Fit
FIT_CROP: Fit
FIT_PAD: Fit
CONTAINER_UNSPECIFIED: Container
CONTAINER_FMP4: Container
VIDEO_CODEC_UNSPECIFIED: VideoCodec
VIDEO_CODEC_H264: VideoCodec
AUDIO_CODEC_UNSPECIFIED: AudioCodec
AUDIO_CODEC_AAC: AudioCodec
RAW_PIXEL_FORMAT_UNSPECIFIED: RawPixelFormat
RAW_PIXEL_FORMAT_I420: RawPixelFormat
RAW_PIXEL_FORMAT_RGB24: RawPixelFormat
VISEME_UNSPECIFIED: Viseme
VISEME_REST: Viseme
VISEME_CLOSED: Viseme
VISEME_OPEN: Viseme
VISEME_WIDE: Viseme
VISEME_ROUNDED: Viseme
VISEME_PUCKERED: Viseme
VISEME_FV: Viseme
VISEME_L: Viseme
CHUNK_KIND_UNSPECIFIED: ChunkKind
CHUNK_KIND_INIT: ChunkKind
CHUNK_KIND_FRAGMENT: ChunkKind
AUDIO_KIND_UNSPECIFIED: AudioKind
AUDIO_KIND_SPEECH: AudioKind
AUDIO_KIND_MUSIC: AudioKind
AUDIO_KIND_OTHER: AudioKind
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_AUDIO: InputKind
INPUT_KIND_IMAGE: InputKind
INPUT_KIND_VIDEO: InputKind

class CancelRequest(_message.Message):
    __slots__ = ("resume_token",)
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resume_token: str
    def __init__(self, resume_token: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ("resume_token", "last_sequence")
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    resume_token: str
    last_sequence: int
    def __init__(self, resume_token: _Optional[str] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("config", "image", "audio", "end", "video")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    config: GenerateConfig
    image: ImageInput
    audio: AudioChunk
    end: EndOfInput
    video: VideoInput
    def __init__(self, config: _Optional[_Union[GenerateConfig, _Mapping]] = ..., image: _Optional[_Union[ImageInput, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., end: _Optional[_Union[EndOfInput, _Mapping]] = ..., video: _Optional[_Union[VideoInput, _Mapping]] = ...) -> None: ...

class GenerateConfig(_message.Message):
    __slots__ = ("model", "output", "prompt", "trim", "seed", "request_id", "transcript", "animation", "sync_mode", "face", "include_timeline", "resumable", "range", "speakers", "channel_speakers")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TRIM_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    ANIMATION_FIELD_NUMBER: _ClassVar[int]
    SYNC_MODE_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TIMELINE_FIELD_NUMBER: _ClassVar[int]
    RESUMABLE_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    model: str
    output: OutputOptions
    prompt: str
    trim: AudioTrim
    seed: int
    request_id: str
    transcript: str
    animation: AnimationOptions
    sync_mode: SyncMode
    face: FaceSelector
    include_timeline: bool
    resumable: bool
    range: TimeRange
    speakers: _containers.RepeatedCompositeFieldContainer[SpeakerTurn]
    channel_speakers: _containers.RepeatedCompositeFieldContainer[ChannelSpeaker]
    def __init__(self, model: _Optional[str] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., prompt: _Optional[str] = ..., trim: _Optional[_Union[AudioTrim, _Mapping]] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ..., transcript: _Optional[str] = ..., animation: _Optional[_Union[AnimationOptions, _Mapping]] = ..., sync_mode: _Optional[_Union[SyncMode, str]] = ..., face: _Optional[_Union[FaceSelector, _Mapping]] = ..., include_timeline: _Optional[bool] = ..., resumable: _Optional[bool] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., speakers: _Optional[_Iterable[_Union[SpeakerTurn, _Mapping]]] = ..., channel_speakers: _Optional[_Iterable[_Union[ChannelSpeaker, _Mapping]]] = ...) -> None: ...

class SpeakerTurn(_message.Message):
    __slots__ = ("start_seconds", "end_seconds", "face")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    face: FaceSelector
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., face: _Optional[_Union[FaceSelector, _Mapping]] = ...) -> None: ...

class ChannelSpeaker(_message.Message):
    __slots__ = ("channel", "face")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    channel: int
    face: FaceSelector
    def __init__(self, channel: _Optional[int] = ..., face: _Optional[_Union[FaceSelector, _Mapping]] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_seconds", "end_seconds")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class AnimationOptions(_message.Message):
    __slots__ = ("expression_scale", "head_motion_scale", "blink_rate")
    EXPRESSION_SCALE_FIELD_NUMBER: _ClassVar[int]
    HEAD_MOTION_SCALE_FIELD_NUMBER: _ClassVar[int]
    BLINK_RATE_FIELD_NUMBER: _ClassVar[int]
    expression_scale: float
    head_motion_scale: float
    blink_rate: float
    def __init__(self, expression_scale: _Optional[float] = ..., head_motion_scale: _Optional[float] = ..., blink_rate: _Optional[float] = ...) -> None: ...

class FaceSelector(_message.Message):
    __slots__ = ("index", "box")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    index: int
    box: Box
    def __init__(self, index: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class OutputOptions(_message.Message):
    __slots__ = ("container", "video_codec", "audio_codec", "fps", "resolution", "aspect_ratio", "fit")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CODEC_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    ASPECT_RATIO_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    container: Container
    video_codec: VideoCodec
    audio_codec: AudioCodec
    fps: float
    resolution: Resolution
    aspect_ratio: AspectRatio
    fit: Fit
    def __init__(self, container: _Optional[_Union[Container, str]] = ..., video_codec: _Optional[_Union[VideoCodec, str]] = ..., audio_codec: _Optional[_Union[AudioCodec, str]] = ..., fps: _Optional[float] = ..., resolution: _Optional[_Union[Resolution, _Mapping]] = ..., aspect_ratio: _Optional[_Union[AspectRatio, str]] = ..., fit: _Optional[_Union[Fit, str]] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("preset", "size")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    preset: ResolutionPreset
    size: Size
    def __init__(self, preset: _Optional[_Union[ResolutionPreset, str]] = ..., size: _Optional[_Union[Size, _Mapping]] = ...) -> None: ...

class Size(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class AudioTrim(_message.Message):
    __slots__ = ("start_seconds", "end_seconds")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class ImageInput(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class VideoInput(_message.Message):
    __slots__ = ("data", "last", "frame")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    frame: RawVideoFrame
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ..., frame: _Optional[_Union[RawVideoFrame, _Mapping]] = ...) -> None: ...

class RawVideoFrame(_message.Message):
    __slots__ = ("data", "format", "width", "height", "frame_rate", "time_us")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    TIME_US_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: RawPixelFormat
    width: int
    height: int
    frame_rate: float
    time_us: int
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[RawPixelFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., frame_rate: _Optional[float] = ..., time_us: _Optional[int] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("encoded", "pcm")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: PcmChunk
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[_Union[PcmChunk, _Mapping]] = ...) -> None: ...

class PcmChunk(_message.Message):
    __slots__ = ("data", "sample_rate", "channels")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sample_rate: int
    channels: int
    def __init__(self, data: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class EndOfInput(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("accepted", "chunk", "progress", "summary", "timeline")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    chunk: MediaChunk
    progress: Progress
    summary: Summary
    timeline: Timeline
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., chunk: _Optional[_Union[MediaChunk, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., timeline: _Optional[_Union[Timeline, _Mapping]] = ...) -> None: ...

class Timeline(_message.Message):
    __slots__ = ("frames", "beat_grid")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    BEAT_GRID_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[TimelineFrame]
    beat_grid: BeatGrid
    def __init__(self, frames: _Optional[_Iterable[_Union[TimelineFrame, _Mapping]]] = ..., beat_grid: _Optional[_Union[BeatGrid, _Mapping]] = ...) -> None: ...

class TimelineFrame(_message.Message):
    __slots__ = ("index", "time_seconds", "mouth_open", "viseme", "head_yaw", "head_pitch", "head_roll", "blink")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MOUTH_OPEN_FIELD_NUMBER: _ClassVar[int]
    VISEME_FIELD_NUMBER: _ClassVar[int]
    HEAD_YAW_FIELD_NUMBER: _ClassVar[int]
    HEAD_PITCH_FIELD_NUMBER: _ClassVar[int]
    HEAD_ROLL_FIELD_NUMBER: _ClassVar[int]
    BLINK_FIELD_NUMBER: _ClassVar[int]
    index: int
    time_seconds: float
    mouth_open: float
    viseme: Viseme
    head_yaw: float
    head_pitch: float
    head_roll: float
    blink: float
    def __init__(self, index: _Optional[int] = ..., time_seconds: _Optional[float] = ..., mouth_open: _Optional[float] = ..., viseme: _Optional[_Union[Viseme, str]] = ..., head_yaw: _Optional[float] = ..., head_pitch: _Optional[float] = ..., head_roll: _Optional[float] = ..., blink: _Optional[float] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("request_id", "model", "width", "height", "fps", "seed", "mime_type", "unused_prompt_words", "face_box", "resume_token", "ignored_settings", "warnings", "range", "faces")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    UNUSED_PROMPT_WORDS_FIELD_NUMBER: _ClassVar[int]
    FACE_BOX_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IGNORED_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    width: int
    height: int
    fps: float
    seed: int
    mime_type: str
    unused_prompt_words: _containers.RepeatedScalarFieldContainer[str]
    face_box: Box
    resume_token: str
    ignored_settings: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    range: TimeRange
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., seed: _Optional[int] = ..., mime_type: _Optional[str] = ..., unused_prompt_words: _Optional[_Iterable[str]] = ..., face_box: _Optional[_Union[Box, _Mapping]] = ..., resume_token: _Optional[str] = ..., ignored_settings: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ...) -> None: ...

class DetectedFace(_message.Message):
    __slots__ = ("index", "box", "score", "first_seconds", "last_seconds", "visible_seconds")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    index: int
    box: Box
    score: float
    first_seconds: float
    last_seconds: float
    visible_seconds: float
    def __init__(self, index: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., first_seconds: _Optional[float] = ..., last_seconds: _Optional[float] = ..., visible_seconds: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class MediaChunk(_message.Message):
    __slots__ = ("sequence_number", "kind", "start_seconds", "end_seconds", "data", "crc32", "report")
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    sequence_number: int
    kind: ChunkKind
    start_seconds: float
    end_seconds: float
    data: bytes
    crc32: int
    report: FragmentReport
    def __init__(self, sequence_number: _Optional[int] = ..., kind: _Optional[_Union[ChunkKind, str]] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., data: _Optional[bytes] = ..., crc32: _Optional[int] = ..., report: _Optional[_Union[FragmentReport, _Mapping]] = ...) -> None: ...

class FragmentReport(_message.Message):
    __slots__ = ("frames", "face_share", "tracking_confidence", "sync_agreement", "face_lost", "cut", "looped")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FACE_SHARE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SYNC_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    FACE_LOST_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    LOOPED_FIELD_NUMBER: _ClassVar[int]
    frames: int
    face_share: float
    tracking_confidence: float
    sync_agreement: float
    face_lost: bool
    cut: bool
    looped: bool
    def __init__(self, frames: _Optional[int] = ..., face_share: _Optional[float] = ..., tracking_confidence: _Optional[float] = ..., sync_agreement: _Optional[float] = ..., face_lost: _Optional[bool] = ..., cut: _Optional[bool] = ..., looped: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("frames_done", "frames_total", "audio_seconds")
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frames_done: int
    frames_total: int
    audio_seconds: float
    def __init__(self, frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., audio_seconds: _Optional[float] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("frames", "duration_seconds", "bytes", "chunks", "timings", "audio_kind", "mouth_sources", "warnings")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_KIND_FIELD_NUMBER: _ClassVar[int]
    MOUTH_SOURCES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    duration_seconds: float
    bytes: int
    chunks: int
    timings: Timings
    audio_kind: AudioKind
    mouth_sources: MouthSources
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, frames: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., bytes: _Optional[int] = ..., chunks: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., audio_kind: _Optional[_Union[AudioKind, str]] = ..., mouth_sources: _Optional[_Union[MouthSources, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class MouthSources(_message.Message):
    __slots__ = ("passed_through", "warped", "retrieved")
    PASSED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    WARPED_FIELD_NUMBER: _ClassVar[int]
    RETRIEVED_FIELD_NUMBER: _ClassVar[int]
    passed_through: int
    warped: int
    retrieved: int
    def __init__(self, passed_through: _Optional[int] = ..., warped: _Optional[int] = ..., retrieved: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("total_seconds", "first_chunk_seconds", "decode_seconds", "inference_seconds", "encode_seconds")
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CHUNK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DECODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    total_seconds: float
    first_chunk_seconds: float
    decode_seconds: float
    inference_seconds: float
    encode_seconds: float
    def __init__(self, total_seconds: _Optional[float] = ..., first_chunk_seconds: _Optional[float] = ..., decode_seconds: _Optional[float] = ..., inference_seconds: _Optional[float] = ..., encode_seconds: _Optional[float] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("config", "audio", "end")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    config: AnalyzeConfig
    audio: AudioChunk
    end: EndOfInput
    def __init__(self, config: _Optional[_Union[AnalyzeConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., end: _Optional[_Union[EndOfInput, _Mapping]] = ...) -> None: ...

class AnalyzeConfig(_message.Message):
    __slots__ = ("trim", "transcript", "request_id", "fps")
    TRIM_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    trim: AudioTrim
    transcript: str
    request_id: str
    fps: float
    def __init__(self, trim: _Optional[_Union[AudioTrim, _Mapping]] = ..., transcript: _Optional[str] = ..., request_id: _Optional[str] = ..., fps: _Optional[float] = ...) -> None: ...

class AudioAnalysis(_message.Message):
    __slots__ = ("request_id", "duration_seconds", "kind", "segments", "voiced", "phones", "visemes", "aligned", "jaw_fps", "jaw_open", "beat_grid", "onsets", "analysis_seconds")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    VOICED_FIELD_NUMBER: _ClassVar[int]
    PHONES_FIELD_NUMBER: _ClassVar[int]
    VISEMES_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    JAW_FPS_FIELD_NUMBER: _ClassVar[int]
    JAW_OPEN_FIELD_NUMBER: _ClassVar[int]
    BEAT_GRID_FIELD_NUMBER: _ClassVar[int]
    ONSETS_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    duration_seconds: float
    kind: AudioKind
    segments: _containers.RepeatedCompositeFieldContainer[KindSegment]
    voiced: _containers.RepeatedCompositeFieldContainer[TimeRange]
    phones: _containers.RepeatedCompositeFieldContainer[PhoneSpan]
    visemes: _containers.RepeatedCompositeFieldContainer[VisemeSpan]
    aligned: bool
    jaw_fps: float
    jaw_open: _containers.RepeatedScalarFieldContainer[float]
    beat_grid: BeatGrid
    onsets: _containers.RepeatedScalarFieldContainer[float]
    analysis_seconds: float
    def __init__(self, request_id: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., kind: _Optional[_Union[AudioKind, str]] = ..., segments: _Optional[_Iterable[_Union[KindSegment, _Mapping]]] = ..., voiced: _Optional[_Iterable[_Union[TimeRange, _Mapping]]] = ..., phones: _Optional[_Iterable[_Union[PhoneSpan, _Mapping]]] = ..., visemes: _Optional[_Iterable[_Union[VisemeSpan, _Mapping]]] = ..., aligned: _Optional[bool] = ..., jaw_fps: _Optional[float] = ..., jaw_open: _Optional[_Iterable[float]] = ..., beat_grid: _Optional[_Union[BeatGrid, _Mapping]] = ..., onsets: _Optional[_Iterable[float]] = ..., analysis_seconds: _Optional[float] = ...) -> None: ...

class KindSegment(_message.Message):
    __slots__ = ("start_seconds", "end_seconds", "kind")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    kind: AudioKind
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., kind: _Optional[_Union[AudioKind, str]] = ...) -> None: ...

class PhoneSpan(_message.Message):
    __slots__ = ("phone", "start_seconds", "end_seconds")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    phone: str
    start_seconds: float
    end_seconds: float
    def __init__(self, phone: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class VisemeSpan(_message.Message):
    __slots__ = ("viseme", "start_seconds", "end_seconds")
    VISEME_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    viseme: Viseme
    start_seconds: float
    end_seconds: float
    def __init__(self, viseme: _Optional[_Union[Viseme, str]] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class BeatGrid(_message.Message):
    __slots__ = ("tempo_bpm", "beats", "downbeats", "beats_per_bar", "confidence")
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    BEATS_FIELD_NUMBER: _ClassVar[int]
    DOWNBEATS_FIELD_NUMBER: _ClassVar[int]
    BEATS_PER_BAR_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    tempo_bpm: float
    beats: _containers.RepeatedScalarFieldContainer[float]
    downbeats: _containers.RepeatedScalarFieldContainer[float]
    beats_per_bar: int
    confidence: float
    def __init__(self, tempo_bpm: _Optional[float] = ..., beats: _Optional[_Iterable[float]] = ..., downbeats: _Optional[_Iterable[float]] = ..., beats_per_bar: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class FacesRequest(_message.Message):
    __slots__ = ("image", "video", "end")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    image: ImageInput
    video: VideoInput
    end: EndOfInput
    def __init__(self, image: _Optional[_Union[ImageInput, _Mapping]] = ..., video: _Optional[_Union[VideoInput, _Mapping]] = ..., end: _Optional[_Union[EndOfInput, _Mapping]] = ...) -> None: ...

class FacesResponse(_message.Message):
    __slots__ = ("faces", "width", "height", "duration_seconds", "frames_scanned")
    FACES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SCANNED_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    width: int
    height: int
    duration_seconds: float
    frames_scanned: int
    def __init__(self, faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., frames_scanned: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "description", "accepted_inputs", "native_fps", "resolutions", "accepts_prompt", "ready", "lookahead_seconds", "prompt_effects", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_INPUTS_FIELD_NUMBER: _ClassVar[int]
    NATIVE_FPS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_PROMPT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    accepted_inputs: _containers.RepeatedScalarFieldContainer[InputKind]
    native_fps: float
    resolutions: _containers.RepeatedScalarFieldContainer[ResolutionPreset]
    accepts_prompt: bool
    ready: bool
    lookahead_seconds: float
    prompt_effects: _containers.RepeatedCompositeFieldContainer[PromptEffect]
    settings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., accepted_inputs: _Optional[_Iterable[_Union[InputKind, str]]] = ..., native_fps: _Optional[float] = ..., resolutions: _Optional[_Iterable[_Union[ResolutionPreset, str]]] = ..., accepts_prompt: _Optional[bool] = ..., ready: _Optional[bool] = ..., lookahead_seconds: _Optional[float] = ..., prompt_effects: _Optional[_Iterable[_Union[PromptEffect, _Mapping]]] = ..., settings: _Optional[_Iterable[str]] = ...) -> None: ...

class PromptEffect(_message.Message):
    __slots__ = ("kind", "effect", "phrases")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    effect: str
    phrases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., effect: _Optional[str] = ..., phrases: _Optional[_Iterable[str]] = ...) -> None: ...
