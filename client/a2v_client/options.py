"""``GenerateOptions``: the caller's choices for one generation, and their conversion to the
protobuf ``GenerateConfig`` the server receives first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

from a2v.v1 import audio_to_video_pb2 as pb


@dataclass
class GenerateOptions:
    """Client-side view of GenerateConfig (None / 0 = server default)."""

    model: str = ""
    fps: float = 0.0
    resolution: str | None = None  # "480p" | "720p" | "1080p" | "WxH"
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

    def to_proto(self) -> pb.GenerateConfig:
        out = pb.OutputOptions(fps=self.fps)
        if self.resolution:
            out.resolution.CopyFrom(parse_resolution(self.resolution))
        if self.aspect:
            key = "SOURCE" if self.aspect == "source" else self.aspect.replace(":", "_")
            out.aspect_ratio = _enum(pb.AspectRatio, f"ASPECT_RATIO_{key}")
        if self.fit:
            out.fit = _enum(pb.Fit, f"FIT_{self.fit.upper()}")
        animation = pb.AnimationOptions()
        for name in ("expression_scale", "head_motion_scale", "blink_rate"):
            if getattr(self, name) is not None:
                setattr(animation, name, getattr(self, name))
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
            config.sync_mode = _enum(pb.SyncMode, f"SYNC_MODE_{self.sync_mode.upper()}")
        if self.face_index is not None:
            config.face.index = self.face_index
        return config


def parse_resolution(text: str) -> pb.Resolution:
    text = text.strip().lower()
    presets = {
        "480p": pb.RESOLUTION_PRESET_480P,
        "720p": pb.RESOLUTION_PRESET_720P,
        "1080p": pb.RESOLUTION_PRESET_1080P,
    }
    if text in presets:
        return pb.Resolution(preset=presets[text])
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"resolution {text!r}: use 480p, 720p, 1080p or WIDTHxHEIGHT")
    return pb.Resolution(size=pb.Size(width=int(width), height=int(height)))


_Enum = TypeVar("_Enum", pb.AspectRatio, pb.Fit, pb.SyncMode)


def _enum(kind: type[_Enum], name: str) -> _Enum:
    """``kind.Value(name)``: the number of an enum value by name (ValueError for an unknown one).

    The cast only restates the type: the generated stubs declare the message fields as the
    enum class but ``Value()`` as returning a plain int, which is what the fields hold.
    """
    return cast(_Enum, kind.Value(name))
