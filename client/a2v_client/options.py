"""``GenerateOptions``: the caller's choices for one generation, and their conversion to the
protobuf ``GenerateConfig`` the server receives first.

``to_proto()`` checks every value first and raises ``OptionError`` (a ``ValueError``) that names
the option and says what to give, so a mistake is reported before a stream is opened. The
ranges are the contract's (protos/a2v/v1/audio_to_video.proto); the server checks them again
(a unit test keeps the two in step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from a2v.v1 import audio_to_video_pb2 as pb

from .errors import A2VClientError

ASPECTS = ("1:1", "16:9", "9:16", "4:3", "3:4", "source")
FITS = ("crop", "pad")
SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")
RESOLUTIONS = ("480p", "720p", "1080p", "source")
MIN_FPS, MAX_FPS, DEFAULT_FPS = 1.0, 60.0, 25.0
#: explicit sizes: even, each side within these
MIN_SIDE, MAX_SIDE = 64, 3840
#: upper bound of each animation setting (all start at 0) and its default
ANIMATION = {
    "expression_scale": (2.0, 1.0),
    "head_motion_scale": (2.0, 1.0),
    "blink_rate": (60.0, 15.0),
}
MAX_PROMPT_CHARS = 2000
MAX_TRANSCRIPT_CHARS = 5000
MAX_TRIM_SECONDS = 86_400
MAX_REQUEST_ID_CHARS = 128
_ASPECT_VALUES = {a: a.split(":") for a in ASPECTS if a != "source"}


#: GenerateOptions attribute -> its field in the request, as the server names it
CONFIG_FIELDS = {
    "model": "config.model",
    "fps": "config.output.fps",
    "resolution": "config.output.resolution",
    "aspect": "config.output.aspect_ratio",
    "fit": "config.output.fit",
    "prompt": "config.prompt",
    "trim_start": "config.trim.start_seconds",
    "trim_end": "config.trim.end_seconds",
    "seed": "config.seed",
    "request_id": "config.request_id",
    "transcript": "config.transcript",
    "expression_scale": "config.animation.expression_scale",
    "head_motion_scale": "config.animation.head_motion_scale",
    "blink_rate": "config.animation.blink_rate",
    "sync_mode": "config.sync_mode",
    "face_index": "config.face.index",
    "range": "config.range",
    "speakers": "config.speakers",
    "channel_speakers": "config.channel_speakers",
}


class OptionError(A2VClientError, ValueError):
    """A ``GenerateOptions`` value the server would refuse, found before anything is sent.

    A ``ValueError``, and an ``A2VClientError`` with code INVALID_ARGUMENT and the field
    violation the server would have sent: ``option`` is the attribute's name, ``value`` what it
    held, ``problem`` what is wrong and what to give instead."""

    def __init__(self, option: str, value: Any, problem: str, field: str = "") -> None:
        self.option = option
        self.value = value
        self.problem = problem
        message = f"{option}={value!r}: {problem}"
        field = field or CONFIG_FIELDS.get(option, option)
        super().__init__("INVALID_ARGUMENT", message, [(field, message)])


@dataclass
class GenerateOptions:
    """Client-side view of GenerateConfig (None / 0 = server default)."""

    model: str = ""
    #: frames per second, 1..60 (29.97 too); 0 = the server's default, 25
    fps: float = 0.0
    resolution: str | None = None  # "480p" | "720p" | "1080p" | "source" | "WxH"
    aspect: str | None = None  # "1:1" | "16:9" | "9:16" | "4:3" | "3:4" | "source"
    fit: str | None = None  # "crop" | "pad"
    prompt: str = ""
    trim_start: float = 0.0
    trim_end: float = 0.0
    seed: int = 0
    request_id: str = ""
    transcript: str = ""
    expression_scale: float | None = None
    head_motion_scale: float | None = None
    blink_rate: float | None = None
    include_timeline: bool = False
    sync_mode: str | None = None  # lipsync: bounce | loop | cut_off | silence | remap
    face_index: int | None = None  # lipsync: n-th largest face
    #: let the server keep rendering through a dropped connection; the client resumes
    resumable: bool = True
    #: render only (start, end) seconds of the clip (end 0: to its end), snapped outwards to
    #: keyframes; the frames and timestamps are the full render's (Accepted.range says where)
    range: tuple[float, float] | None = None
    #: several speakers: turns (start, end seconds (end 0: to the end), face index) ...
    speakers: list[tuple[float, float, int]] | None = None
    #: ... or a face index per audio channel {channel: face}
    channel_speakers: dict[int, int] | None = None

    def check(self) -> None:
        """Raise ``OptionError`` for the first value the server would refuse."""
        self.to_proto()

    def to_proto(self) -> pb.GenerateConfig:
        out = pb.OutputOptions(fps=_fps(self.fps))
        if self.resolution:
            out.resolution.CopyFrom(parse_resolution(self.resolution))
        if self.aspect:
            _choice("aspect", self.aspect, ASPECTS)
            key = "SOURCE" if self.aspect == "source" else self.aspect.replace(":", "_")
            out.aspect_ratio = pb.AspectRatio.Value(f"ASPECT_RATIO_{key}")  # type: ignore[assignment]
            if out.resolution.WhichOneof("value") == "size" and self.aspect != "source":
                _size_matches(out.resolution.size, self.aspect)
        if self.fit:
            _choice("fit", self.fit, FITS)
            out.fit = pb.Fit.Value(f"FIT_{self.fit.upper()}")  # type: ignore[assignment]
        _text("prompt", self.prompt, MAX_PROMPT_CHARS)
        _text("transcript", self.transcript, MAX_TRANSCRIPT_CHARS)
        _trim(self.trim_start, self.trim_end)
        _whole("seed", self.seed, 2**64 - 1, "0 lets the server choose one")
        if len(self.request_id) > MAX_REQUEST_ID_CHARS or not self.request_id.isprintable():
            raise OptionError(
                "request_id",
                self.request_id,
                f"use at most {MAX_REQUEST_ID_CHARS} printable characters (or leave it empty)",
            )
        animation = pb.AnimationOptions()
        for name, (top, default) in ANIMATION.items():
            value = getattr(self, name)
            if value is not None:
                if not _number(value) or not 0 <= value <= top:
                    raise OptionError(
                        name, value, f"give a number within 0..{top:g} (default {default:g})"
                    )
                setattr(animation, name, value)
        config = pb.GenerateConfig(
            model=self.model,
            output=out,
            prompt=self.prompt,
            seed=self.seed,
            request_id=self.request_id,
            trim=pb.AudioTrim(start_seconds=self.trim_start, end_seconds=self.trim_end),
            transcript=self.transcript,
            animation=animation,
            include_timeline=self.include_timeline,
            resumable=self.resumable,
        )
        if self.sync_mode:
            _choice("sync_mode", self.sync_mode, SYNC_MODES)
            config.sync_mode = pb.SyncMode.Value(f"SYNC_MODE_{self.sync_mode.upper()}")  # type: ignore[assignment]
        if self.face_index is not None:
            _whole("face_index", self.face_index, 2**32 - 1, "0 is the largest face")
            config.face.index = self.face_index
        if self.range is not None:
            start, end = _range(self.range)
            config.range.start_seconds, config.range.end_seconds = start, end
        for turn in self.speakers or []:
            if not (isinstance(turn, tuple | list) and len(turn) == 3):
                raise OptionError("speakers", turn, "give (start, end, face index) per turn")
            start, end = _range(turn[:2], "speakers")
            _whole("speakers", turn[2], 2**32 - 1, "a face index, 0 = the largest")
            config.speakers.add(
                start_seconds=start, end_seconds=end, face=pb.FaceSelector(index=turn[2])
            )
        for channel, face in (self.channel_speakers or {}).items():
            _whole("channel_speakers", channel, 7, "a channel, 0 = the left")
            _whole("channel_speakers", face, 2**32 - 1, "a face index, 0 = the largest")
            config.channel_speakers.add(channel=channel, face=pb.FaceSelector(index=face))
        if self.speakers and self.channel_speakers:
            raise OptionError(
                "channel_speakers", self.channel_speakers, "give speakers or channel_speakers"
            )
        return config


def parse_resolution(text: str) -> pb.Resolution:
    """ "480p", "720p", "1080p", "source" (the visual input's own size) or "WIDTHxHEIGHT"
    (even sides within 64..3840)."""
    original = text
    text = str(text).strip().lower()
    presets = {
        "480p": pb.RESOLUTION_PRESET_480P,
        "720p": pb.RESOLUTION_PRESET_720P,
        "1080p": pb.RESOLUTION_PRESET_1080P,
        "source": pb.RESOLUTION_PRESET_SOURCE,
    }
    if text in presets:
        return pb.Resolution(preset=presets[text])
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        hint = f" ({text}p is a preset)" if text in ("480", "720", "1080") else ""
        raise OptionError(
            "resolution",
            original,
            f"use 480p, 720p, 1080p, source or WIDTHxHEIGHT such as 640x360{hint}",
        )
    w, h = int(width), int(height)
    if w % 2 or h % 2 or min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        raise OptionError(
            "resolution",
            original,
            f"width and height must be even numbers within {MIN_SIDE}..{MAX_SIDE}",
            field="config.output.resolution.size",
        )
    return pb.Resolution(size=pb.Size(width=w, height=h))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fps(fps: Any) -> float:
    if not _number(fps) or not (fps == 0 or MIN_FPS <= fps <= MAX_FPS):
        raise OptionError(
            "fps",
            fps,
            f"give {MIN_FPS:g} to {MAX_FPS:g} frames per second (29.97 too), or 0 for the "
            f"default ({DEFAULT_FPS:g})",
        )
    return float(fps)


def _choice(option: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(option, value, f"use {', '.join(allowed[:-1])} or {allowed[-1]}")


def _size_matches(size: pb.Size, aspect: str) -> None:
    a, b = (int(v) for v in _ASPECT_VALUES[aspect])
    if abs(size.width / size.height - a / b) > 0.01:
        raise OptionError(
            "aspect",
            aspect,
            f"the resolution {size.width}x{size.height} does not have that shape: leave the "
            "aspect out with an explicit size, or use a preset (480p, 720p, 1080p)",
        )


def _text(option: str, value: Any, limit: int) -> None:
    if not isinstance(value, str):
        raise OptionError(option, value, "give text (a str)")
    if len(value) > limit:
        raise OptionError(
            option, f"{value[:20]}...", f"{len(value)} characters; the limit is {limit}"
        )


def _trim(start: Any, end: Any) -> None:
    if not _number(start) or not 0 <= start <= MAX_TRIM_SECONDS:
        raise OptionError(
            "trim_start", start, f"give seconds within 0..{MAX_TRIM_SECONDS} (0: from the start)"
        )
    if not _number(end) or not (end == 0 or start < end <= MAX_TRIM_SECONDS):
        raise OptionError(
            "trim_end",
            end,
            f"give seconds after the trim start ({start:g} s), or 0 for the end of the audio",
        )


def _range(value: Any, option: str = "range") -> tuple[float, float]:
    ok = isinstance(value, tuple | list) and len(value) == 2 and all(map(_number, value))
    if ok:
        start, end = value
        ok = 0 <= start <= MAX_TRIM_SECONDS and (end == 0 or start < end <= MAX_TRIM_SECONDS)
    if not ok:
        raise OptionError(
            option,
            value,
            "give (start, end) seconds with start >= 0 and end after it (end 0: to the end)",
        )
    return float(value[0]), float(value[1])


def _whole(option: str, value: Any, top: int, note: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise OptionError(option, value, f"give a whole number within 0..{top} ({note})")
