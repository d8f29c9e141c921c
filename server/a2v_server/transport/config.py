"""GenerateConfig -> GenerateSpec: every field validated, errors name the field to fix."""

from __future__ import annotations

import math
import secrets
import uuid
from typing import NamedTuple

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server import catalog, domain
from a2v_server.errors import InvalidInput, NotFound
from a2v_server.pipeline import framing

MAX_PROMPT_CHARS = 2000
MAX_TRANSCRIPT_CHARS = 5000
#: trim times beyond a day are refused (no audio is that long: see Settings.max_audio_seconds)
MAX_TRIM_SECONDS = 86_400
_SYNC_MODES = {
    pb.SYNC_MODE_UNSPECIFIED: "bounce",
    pb.SYNC_MODE_BOUNCE: "bounce",
    pb.SYNC_MODE_LOOP: "loop",
    pb.SYNC_MODE_CUT_OFF: "cut_off",
    pb.SYNC_MODE_SILENCE: "silence",
    pb.SYNC_MODE_REMAP: "remap",
}
_ASPECTS = {
    pb.ASPECT_RATIO_UNSPECIFIED: None,
    pb.ASPECT_RATIO_SOURCE: None,
    pb.ASPECT_RATIO_1_1: "1:1",
    pb.ASPECT_RATIO_16_9: "16:9",
    pb.ASPECT_RATIO_9_16: "9:16",
    pb.ASPECT_RATIO_4_3: "4:3",
    pb.ASPECT_RATIO_3_4: "3:4",
}
#: short side per preset; None: the model's default (UNSPECIFIED) or the source's (SOURCE)
_PRESETS: dict[pb.ResolutionPreset, int | None] = {
    pb.RESOLUTION_PRESET_UNSPECIFIED: None,
    pb.RESOLUTION_PRESET_480P: 480,
    pb.RESOLUTION_PRESET_720P: 720,
    pb.RESOLUTION_PRESET_1080P: 1080,
    pb.RESOLUTION_PRESET_SOURCE: None,
}
PRESET_ENUM = {short: enum for enum, short in _PRESETS.items() if short}
_FITS = {pb.FIT_UNSPECIFIED: "crop", pb.FIT_CROP: "crop", pb.FIT_PAD: "pad"}


def spec_from_config(config: pb.GenerateConfig) -> tuple[domain.GenerateSpec, catalog.OfferedModel]:
    """Validate a GenerateConfig. Raises InvalidInput/NotFound naming the field to fix."""
    model = find_model(config.model or catalog.DEFAULT_MODEL, field="config.model")
    # In the order of the config's fields: the first wrong one is the one reported.
    output = _output_format(config.output)
    _require(
        len(config.prompt) <= MAX_PROMPT_CHARS,
        "config.prompt",
        f"the prompt has {len(config.prompt)} characters; the limit is {MAX_PROMPT_CHARS}",
    )
    trim_start, trim_end = _trim(config.trim)
    _require(
        len(config.transcript) <= MAX_TRANSCRIPT_CHARS,
        "config.transcript",
        f"the transcript has {len(config.transcript)} characters; the limit is "
        f"{MAX_TRANSCRIPT_CHARS}",
    )
    animation = _animation(config.animation)
    _require(
        config.sync_mode in _SYNC_MODES,
        "config.sync_mode",
        f"unknown sync mode value {config.sync_mode}",
    )
    face_index, face_box = _face_selector(config.face)
    render_range = _range(config.range) if config.HasField("range") else None
    speakers = _speakers(config)
    spec = domain.GenerateSpec(
        model=model.name,
        request_id=_request_id(config.request_id),
        seed=config.seed or secrets.randbits(31) + 1,
        prompt=config.prompt,
        transcript=config.transcript,
        include_timeline=config.include_timeline,
        resumable=config.resumable,
        sync_mode=_SYNC_MODES[config.sync_mode],
        face_index=face_index,
        face_box=face_box,
        fps=output.fps,
        aspect=output.aspect,
        short_side=output.short_side,
        size=output.size,
        source_size=output.source_size,
        fit=output.fit,
        trim_start=trim_start,
        trim_end=trim_end,
        expression_scale=animation["expression_scale"],
        head_motion_scale=animation["head_motion_scale"],
        blink_rate=animation["blink_rate"],
        render_range=render_range,
        speakers=speakers,
    )
    return spec, model


def analyze_spec_from_config(config: pb.AnalyzeConfig) -> domain.AnalyzeSpec:
    """Validate an AnalyzeConfig. Raises InvalidInput naming the field to fix."""
    trim_start, trim_end = _trim(config.trim)
    _require(
        len(config.transcript) <= MAX_TRANSCRIPT_CHARS,
        "config.transcript",
        f"the transcript has {len(config.transcript)} characters; the limit is "
        f"{MAX_TRANSCRIPT_CHARS}",
    )
    fps = config.fps or domain.DEFAULT_FPS
    _require(
        math.isfinite(fps) and domain.MIN_FPS <= fps <= domain.MAX_FPS,
        "config.fps",
        f"fps must be within {domain.MIN_FPS}..{domain.MAX_FPS}, got {config.fps:g}",
    )
    return domain.AnalyzeSpec(
        request_id=_request_id(config.request_id),
        trim_start=trim_start,
        trim_end=trim_end,
        transcript=config.transcript,
        fps=float(fps),
    )


def find_model(name: str, *, field: str) -> catalog.OfferedModel:
    model = catalog.MODELS.get(name)
    if model is None:
        raise NotFound(
            f"unknown model {name!r}: choose one of {sorted(catalog.MODELS)} (see ListModels)",
            field=field,
        )
    return model


class _Output(NamedTuple):
    fps: float
    aspect: str | None
    short_side: int | None
    size: tuple[int, int] | None
    fit: str
    source_size: bool


def _output_format(out: pb.OutputOptions) -> _Output:
    """Container, codecs, fps, aspect, resolution and fit."""
    for value, allowed, name, only in (
        (out.container, pb.CONTAINER_FMP4, "container", "CONTAINER_FMP4"),
        (out.video_codec, pb.VIDEO_CODEC_H264, "video_codec", "VIDEO_CODEC_H264"),
        (out.audio_codec, pb.AUDIO_CODEC_AAC, "audio_codec", "AUDIO_CODEC_AAC"),
    ):
        _require(
            value in (0, allowed),  # 0: unspecified
            f"config.output.{name}",
            f"only {only} is supported",
        )
    fps = out.fps or domain.DEFAULT_FPS
    _require(
        math.isfinite(fps) and domain.MIN_FPS <= fps <= domain.MAX_FPS,
        "config.output.fps",
        f"fps must be within {domain.MIN_FPS}..{domain.MAX_FPS}, got {out.fps:g}",
    )
    _require(
        out.aspect_ratio in _ASPECTS,
        "config.output.aspect_ratio",
        f"unknown aspect ratio value {out.aspect_ratio}",
    )
    _require(out.fit in _FITS, "config.output.fit", f"unknown fit value {out.fit}")
    aspect = _ASPECTS[out.aspect_ratio]
    short_side: int | None = None
    size: tuple[int, int] | None = None
    which = out.resolution.WhichOneof("value")
    if which == "size":
        size = _size(out.resolution.size.width, out.resolution.size.height, aspect)
    else:
        preset = out.resolution.preset if which == "preset" else pb.RESOLUTION_PRESET_UNSPECIFIED
        _require(
            preset in _PRESETS,
            "config.output.resolution.preset",
            f"unknown resolution preset value {preset}",
        )
        short_side = _PRESETS[preset]
    source = which == "preset" and out.resolution.preset == pb.RESOLUTION_PRESET_SOURCE
    return _Output(float(fps), aspect, short_side, size, _FITS[out.fit], source)


def _size(w: int, h: int, aspect: str | None) -> tuple[int, int]:
    # Checked here, not only when framing: a bad size must fail before any decoding.
    _require(
        w % 2 == 0
        and h % 2 == 0
        and min(w, h) >= framing.MIN_SIDE
        and max(w, h) <= framing.MAX_SIDE,
        "config.output.resolution.size",
        f"resolution {w}x{h} is not allowed: width and height must be even and within "
        f"{framing.MIN_SIDE}..{framing.MAX_SIDE}",
    )
    _require(
        aspect is None or abs(w / h - float(framing.ASPECTS[aspect])) <= 0.01,
        "config.output.aspect_ratio",
        f"resolution {w}x{h} does not have the aspect ratio {aspect}: leave aspect_ratio "
        "unset with an explicit size, or use a preset",
    )
    return w, h


def _trim(trim: pb.AudioTrim) -> tuple[float, float | None]:
    # An upper bound too: seconds are multiplied by sample rates downstream, and 1e308 s
    # would overflow into infinity there.
    _require(
        math.isfinite(trim.start_seconds) and 0 <= trim.start_seconds <= MAX_TRIM_SECONDS,
        "config.trim.start_seconds",
        f"trim start must be a number within 0..{MAX_TRIM_SECONDS} s",
    )
    _require(
        math.isfinite(trim.end_seconds)
        and (trim.end_seconds == 0 or trim.start_seconds < trim.end_seconds <= MAX_TRIM_SECONDS),
        "config.trim.end_seconds",
        f"trim end must be 0 (until the end) or after the start, at most {MAX_TRIM_SECONDS} s",
    )
    return trim.start_seconds, trim.end_seconds or None


def _range(given: pb.TimeRange) -> tuple[float, float | None]:
    _require(
        math.isfinite(given.start_seconds) and 0 <= given.start_seconds <= MAX_TRIM_SECONDS,
        "config.range.start_seconds",
        f"the range's start must be a number within 0..{MAX_TRIM_SECONDS} s",
    )
    _require(
        math.isfinite(given.end_seconds)
        and (given.end_seconds == 0 or given.start_seconds < given.end_seconds <= MAX_TRIM_SECONDS),
        "config.range.end_seconds",
        "the range's end must be 0 (until the end) or after its start",
    )
    return given.start_seconds, given.end_seconds or None


#: speakers in one generation (each is a model stream of its own)
MAX_SPEAKERS = 4


def _speakers(config: pb.GenerateConfig) -> tuple[domain.Speaker, ...]:
    """GenerateConfig.speakers or channel_speakers, one Speaker per face."""
    if not (config.speakers or config.channel_speakers):
        return ()
    _require(
        not (config.speakers and config.channel_speakers),
        "config.channel_speakers",
        "give speakers (turns in time) or channel_speakers (a channel each), not both",
    )
    _require(
        not config.HasField("face"),
        "config.face",
        "with speakers, each turn names its face: leave face unset",
    )
    faces: dict[tuple, domain.Speaker] = {}
    if config.speakers:
        for n, turn in enumerate(config.speakers):
            field = f"config.speakers[{n}]"
            _require(
                math.isfinite(turn.start_seconds)
                and 0 <= turn.start_seconds <= MAX_TRIM_SECONDS
                and math.isfinite(turn.end_seconds)
                and (turn.end_seconds == 0 or turn.start_seconds < turn.end_seconds),
                field,
                f"turn {n}: give start >= 0 and end after it (or 0: to the end), got "
                f"{turn.start_seconds:g}..{turn.end_seconds:g} s",
            )
            index, box = _face_selector(turn.face, f"{field}.face")
            key = (index, box)
            old = faces.get(key, domain.Speaker(index, box))
            span = (turn.start_seconds, turn.end_seconds or None)
            faces[key] = domain.Speaker(index, box, (*old.turns, span))
    else:
        channels = set()
        for n, route in enumerate(config.channel_speakers):
            field = f"config.channel_speakers[{n}]"
            _require(
                route.channel < 8 and route.channel not in channels,
                f"{field}.channel",
                f"channel {route.channel}: give each channel once, 0 to 7 (0: the left)",
            )
            channels.add(route.channel)
            index, box = _face_selector(route.face, f"{field}.face")
            _require(
                (index, box) not in faces,
                f"{field}.face",
                "two channels name the same face: give each channel its own face",
            )
            faces[(index, box)] = domain.Speaker(index, box, channel=route.channel)
    _require(
        len(faces) <= MAX_SPEAKERS,
        "config.speakers",
        f"{len(faces)} faces speak; at most {MAX_SPEAKERS} can (each is a render of its own)",
    )
    return tuple(faces.values())


def _animation(animation: pb.AnimationOptions) -> dict[str, float | None]:
    """The optional animation settings: None where the caller left one unset."""
    values: dict[str, float | None] = dict.fromkeys(domain.ANIMATION_RANGES)
    for name, top in domain.ANIMATION_RANGES.items():
        if animation.HasField(name):
            value = getattr(animation, name)
            _require(
                math.isfinite(value) and 0.0 <= value <= top,
                f"config.animation.{name}",
                f"{name} must be within 0..{top:g}, got {value:g}",
            )
            values[name] = value
    return values


def _face_selector(
    face: pb.FaceSelector, field: str = "config.face"
) -> tuple[int, tuple[float, float, float, float] | None]:
    which = face.WhichOneof("selector")
    if which == "box":
        b = face.box
        _require(
            all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)) and b.x1 > b.x0 and b.y1 > b.y0,
            f"{field}.box",
            "the face box needs x1 > x0 and y1 > y0 (source video pixels)",
        )
        return 0, (b.x0, b.y0, b.x1, b.y1)
    return (face.index if which == "index" else 0), None


def _request_id(given: str) -> str:
    request_id = given or uuid.uuid4().hex
    _require(
        len(request_id) <= 128 and request_id.isprintable(),
        "config.request_id",
        "request_id must be at most 128 printable characters",
    )
    return request_id


def _require(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidInput(message, field=field)
