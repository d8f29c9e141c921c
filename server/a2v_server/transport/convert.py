"""Protobuf <-> domain: the validated GenerateSpec from a config, input events from requests,
responses from output events, ModelInfo from the catalog. Validation errors name the field."""

from __future__ import annotations

import math
import secrets
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import NamedTuple

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server import catalog, domain
from a2v_server.errors import FailedPrecondition, InvalidInput, NotFound
from a2v_server.pipeline import framing
from a2v_server.transport.parsing import check_parsed

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
_PRESETS = {
    pb.RESOLUTION_PRESET_UNSPECIFIED: 720,
    pb.RESOLUTION_PRESET_480P: 480,
    pb.RESOLUTION_PRESET_720P: 720,
    pb.RESOLUTION_PRESET_1080P: 1080,
}
_PRESET_ENUM = {short: enum for enum, short in _PRESETS.items() if enum}
_FITS = {pb.FIT_UNSPECIFIED: "crop", pb.FIT_CROP: "crop", pb.FIT_PAD: "pad"}
_INPUT_ENUM = {
    catalog.InputKind.AUDIO: pb.INPUT_KIND_AUDIO,
    catalog.InputKind.IMAGE: pb.INPUT_KIND_IMAGE,
    catalog.InputKind.VIDEO: pb.INPUT_KIND_VIDEO,
}


# --- config -> GenerateSpec ------------------------------------------------------------------
def spec_from_config(config: pb.GenerateConfig) -> tuple[domain.GenerateSpec, catalog.ModelSpec]:
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
        fit=output.fit,
        trim_start=trim_start,
        trim_end=trim_end,
        expression_scale=animation["expression_scale"],
        head_motion_scale=animation["head_motion_scale"],
        blink_rate=animation["blink_rate"],
    )
    return spec, model


def find_model(name: str, *, field: str) -> catalog.ModelSpec:
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
    return _Output(float(fps), aspect, short_side, size, _FITS[out.fit])


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


def _face_selector(face: pb.FaceSelector) -> tuple[int, tuple[float, float, float, float] | None]:
    which = face.WhichOneof("selector")
    if which == "box":
        b = face.box
        _require(
            all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)) and b.x1 > b.x0 and b.y1 > b.y0,
            "config.face.box",
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


# --- requests -> input events --------------------------------------------------------------
async def input_events(
    requests: AsyncIterator[pb.GenerateRequest],
) -> AsyncIterator[domain.InputEvent]:
    """The client stream after the config, as domain events."""
    async for request in requests:
        check_parsed(request)
        kind = request.WhichOneof("message")
        if kind == "image":
            yield domain.ImagePiece(request.image.data)
        elif kind == "video":
            yield domain.VideoPiece(request.video.data)
        elif kind == "audio":
            payload = request.audio.WhichOneof("payload")
            if payload == "encoded":
                yield domain.EncodedAudioPiece(request.audio.encoded)
            elif payload == "pcm":
                pcm = request.audio.pcm
                yield domain.PcmAudioPiece(pcm.data, pcm.sample_rate, pcm.channels)
            else:
                raise InvalidInput("an audio message must hold encoded bytes or pcm", field="audio")
        elif kind == "end":
            yield domain.EndOfInput()
        elif kind == "config":
            raise FailedPrecondition(
                "a second config message: send the config once, first", field="config"
            )
        else:
            raise InvalidInput("an empty GenerateRequest: set one of its fields", field="message")


# --- output events -> responses ------------------------------------------------------------
def event_to_proto(event: domain.OutputEvent, resume_token: str = "") -> pb.GenerateResponse:
    if isinstance(event, domain.Chunk):
        seg = event.segment
        return pb.GenerateResponse(
            chunk=pb.MediaChunk(
                sequence_number=event.sequence_number,
                kind=pb.CHUNK_KIND_INIT if seg.kind == "init" else pb.CHUNK_KIND_FRAGMENT,
                start_seconds=seg.start_seconds,
                end_seconds=seg.end_seconds,
                data=seg.data,
                crc32=zlib.crc32(seg.data),
            )
        )
    if isinstance(event, domain.Timeline):
        return pb.GenerateResponse(timeline=pb.Timeline(frames=map(_timeline_frame, event.frames)))
    if isinstance(event, domain.Progress):
        return pb.GenerateResponse(
            progress=pb.Progress(
                frames_done=event.frames_done,
                frames_total=event.frames_total,
                audio_seconds=event.audio_seconds,
            )
        )
    if isinstance(event, domain.Accepted):
        x0, y0, x1, y1 = event.face_box
        return pb.GenerateResponse(
            accepted=pb.Accepted(
                request_id=event.request_id,
                model=event.model,
                width=event.width,
                height=event.height,
                fps=event.fps,
                seed=event.seed,
                mime_type=event.mime_type,
                unused_prompt_words=list(event.unused_prompt_words),
                face_box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1),
                resume_token=resume_token,
            )
        )
    t = event.timings
    return pb.GenerateResponse(
        summary=pb.Summary(
            frames=event.frames,
            duration_seconds=event.duration_seconds,
            bytes=event.bytes,
            chunks=event.chunks,
            timings=pb.Timings(
                total_seconds=t.total,
                first_chunk_seconds=t.first_chunk,
                decode_seconds=t.decode,
                inference_seconds=t.inference,
                encode_seconds=t.encode,
            ),
            audio_kind=event.audio_kind,  # type: ignore[arg-type]  # a model's AudioKind number
        )
    )


def _timeline_frame(f: domain.TimelineFrame) -> pb.TimelineFrame:
    return pb.TimelineFrame(
        index=f.index,
        time_seconds=f.time_seconds,
        mouth_open=f.mouth_open,
        viseme=f.viseme,  # type: ignore[arg-type]  # a model's Viseme number
        head_yaw=f.head_pose[0],
        head_pitch=f.head_pose[1],
        head_roll=f.head_pose[2],
        blink=f.blink,
    )


def model_info(model: catalog.ModelSpec, *, ready: bool, lookahead_seconds: float) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=model.name,
        description=model.description,
        accepted_inputs=[_INPUT_ENUM[k] for k in model.inputs],
        native_fps=model.native_fps,
        resolutions=[_PRESET_ENUM[p] for p in model.presets],
        accepts_prompt=model.accepts_prompt,
        ready=ready,
        lookahead_seconds=lookahead_seconds,
    )
