"""gRPC transport: protobuf <-> domain, and the one place errors become status codes."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
import uuid
import weakref
import zlib
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import trace

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server import catalog
from a2v_server import domain as spec
from a2v_server.errors import A2VError, FailedPrecondition, InvalidInput, NotFound
from a2v_server.inference.triton import Backend, call_deadline
from a2v_server.observability.logs import request_id_var
from a2v_server.pipeline import framing
from a2v_server.pipeline.generation import Generation
from a2v_server.settings import Settings
from a2v_server.transport.sessions import SessionStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AudioToVideo"].full_name
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
_FITS = {pb.FIT_UNSPECIFIED: "crop", pb.FIT_CROP: "crop", pb.FIT_PAD: "pad"}
_PRESET_ENUM = {
    480: pb.RESOLUTION_PRESET_480P,
    720: pb.RESOLUTION_PRESET_720P,
    1080: pb.RESOLUTION_PRESET_1080P,
}
_INPUT_ENUM = {
    catalog.InputKind.AUDIO: pb.INPUT_KIND_AUDIO,
    catalog.InputKind.IMAGE: pb.INPUT_KIND_IMAGE,
    catalog.InputKind.VIDEO: pb.INPUT_KIND_VIDEO,
}


def spec_from_config(config: pb.GenerateConfig) -> tuple[spec.GenerateSpec, catalog.ModelSpec]:
    """Validate a GenerateConfig. Raises InvalidInput/NotFound naming the field to fix."""
    name = config.model or catalog.DEFAULT_MODEL
    model = catalog.MODELS.get(name)
    if model is None:
        raise NotFound(
            f"unknown model {name!r}: choose one of {sorted(catalog.MODELS)} (see ListModels)",
            field="config.model",
        )
    out = config.output
    _require(
        out.container in (pb.CONTAINER_UNSPECIFIED, pb.CONTAINER_FMP4),
        "config.output.container",
        "only CONTAINER_FMP4 is supported",
    )
    _require(
        out.video_codec in (pb.VIDEO_CODEC_UNSPECIFIED, pb.VIDEO_CODEC_H264),
        "config.output.video_codec",
        "only VIDEO_CODEC_H264 is supported",
    )
    _require(
        out.audio_codec in (pb.AUDIO_CODEC_UNSPECIFIED, pb.AUDIO_CODEC_AAC),
        "config.output.audio_codec",
        "only AUDIO_CODEC_AAC is supported",
    )
    fps = out.fps or 25.0
    _require(
        math.isfinite(fps) and 1.0 <= fps <= 60.0,
        "config.output.fps",
        f"fps must be within 1..60, got {out.fps:g}",
    )
    _require(
        out.aspect_ratio in _ASPECTS,
        "config.output.aspect_ratio",
        f"unknown aspect ratio value {out.aspect_ratio}",
    )
    _require(out.fit in _FITS, "config.output.fit", f"unknown fit value {out.fit}")
    short_side: int | None = None
    size: tuple[int, int] | None = None
    which = out.resolution.WhichOneof("value")
    if which == "size":
        size = (out.resolution.size.width, out.resolution.size.height)
        # Checked here, not only when framing: a bad size must fail before any decoding.
        w, h = size
        _require(
            w % 2 == 0
            and h % 2 == 0
            and min(w, h) >= framing.MIN_SIDE
            and max(w, h) <= framing.MAX_SIDE,
            "config.output.resolution.size",
            f"resolution {w}x{h} is not allowed: width and height must be even and within "
            f"{framing.MIN_SIDE}..{framing.MAX_SIDE}",
        )
        aspect = _ASPECTS.get(out.aspect_ratio)
        _require(
            aspect is None or abs(w / h - float(framing.ASPECTS[aspect])) <= 0.01,
            "config.output.aspect_ratio",
            f"resolution {w}x{h} does not have the aspect ratio {aspect}: leave aspect_ratio "
            "unset with an explicit size, or use a preset",
        )
    else:
        preset = out.resolution.preset if which == "preset" else pb.RESOLUTION_PRESET_UNSPECIFIED
        _require(
            preset in _PRESETS,
            "config.output.resolution.preset",
            f"unknown resolution preset value {preset}",
        )
        short_side = _PRESETS[preset]
    _require(
        len(config.prompt) <= MAX_PROMPT_CHARS,
        "config.prompt",
        f"the prompt has {len(config.prompt)} characters; the limit is {MAX_PROMPT_CHARS}",
    )
    trim = config.trim
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
    _require(
        len(config.transcript) <= MAX_TRANSCRIPT_CHARS,
        "config.transcript",
        f"the transcript has {len(config.transcript)} characters; the limit is "
        f"{MAX_TRANSCRIPT_CHARS}",
    )
    animation = config.animation
    ranges = {"expression_scale": 2.0, "head_motion_scale": 2.0, "blink_rate": 60.0}
    for name, top in ranges.items():
        if animation.HasField(name):
            value = getattr(animation, name)
            _require(
                math.isfinite(value) and 0.0 <= value <= top,
                f"config.animation.{name}",
                f"{name} must be within 0..{top:g}, got {value:g}",
            )
    _require(
        config.sync_mode in _SYNC_MODES,
        "config.sync_mode",
        f"unknown sync mode value {config.sync_mode}",
    )
    face_box = None
    if config.face.WhichOneof("selector") == "box":
        b = config.face.box
        _require(
            all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)) and b.x1 > b.x0 and b.y1 > b.y0,
            "config.face.box",
            "the face box needs x1 > x0 and y1 > y0 (source video pixels)",
        )
        face_box = (b.x0, b.y0, b.x1, b.y1)
    request_id = config.request_id or uuid.uuid4().hex
    _require(
        len(request_id) <= 128 and request_id.isprintable(),
        "config.request_id",
        "request_id must be at most 128 printable characters",
    )
    return (
        spec.GenerateSpec(
            model=model.name,
            request_id=request_id,
            seed=config.seed or secrets.randbits(31) + 1,
            fps=float(fps),
            aspect=_ASPECTS[out.aspect_ratio],
            short_side=short_side,
            size=size,
            fit=_FITS[out.fit],
            prompt=config.prompt,
            trim_start=trim.start_seconds,
            trim_end=trim.end_seconds or None,
            transcript=config.transcript,
            expression_scale=(
                animation.expression_scale if animation.HasField("expression_scale") else None
            ),
            head_motion_scale=(
                animation.head_motion_scale if animation.HasField("head_motion_scale") else None
            ),
            blink_rate=animation.blink_rate if animation.HasField("blink_rate") else None,
            include_timeline=config.include_timeline,
            resumable=config.resumable,
            sync_mode=_SYNC_MODES[config.sync_mode],
            face_index=config.face.index if config.face.WhichOneof("selector") == "index" else 0,
            face_box=face_box,
        ),
        model,
    )


def _require(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidInput(message, field=field)


async def input_events(
    requests: AsyncIterator[pb.GenerateRequest],
) -> AsyncIterator[spec.InputEvent]:
    """The client stream after the config, as domain events."""
    async for request in requests:
        _check_parsed(request)
        kind = request.WhichOneof("message")
        if kind == "image":
            yield spec.ImagePiece(request.image.data)
        elif kind == "video":
            yield spec.VideoPiece(request.video.data)
        elif kind == "audio":
            payload = request.audio.WhichOneof("payload")
            if payload == "encoded":
                yield spec.EncodedAudioPiece(request.audio.encoded)
            elif payload == "pcm":
                pcm = request.audio.pcm
                yield spec.PcmAudioPiece(pcm.data, pcm.sample_rate, pcm.channels)
            else:
                raise InvalidInput("an audio message must hold encoded bytes or pcm", field="audio")
        elif kind == "end":
            yield spec.EndOfInput()
        elif kind == "config":
            raise FailedPrecondition(
                "a second config message: send the config once, first", field="config"
            )
        else:
            raise InvalidInput("an empty GenerateRequest: set one of its fields", field="message")


def event_to_proto(event: spec.OutputEvent, resume_token: str = "") -> pb.GenerateResponse:
    if isinstance(event, spec.Chunk):
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
    if isinstance(event, spec.Timeline):
        return pb.GenerateResponse(
            timeline=pb.Timeline(
                frames=[
                    pb.TimelineFrame(
                        index=f.index,
                        time_seconds=f.time_seconds,
                        mouth_open=f.mouth_open,
                        viseme=f.viseme,
                        head_yaw=f.head_pose[0],
                        head_pitch=f.head_pose[1],
                        head_roll=f.head_pose[2],
                        blink=f.blink,
                    )
                    for f in event.frames
                ]
            )
        )
    if isinstance(event, spec.Progress):
        return pb.GenerateResponse(
            progress=pb.Progress(
                frames_done=event.frames_done,
                frames_total=event.frames_total,
                audio_seconds=event.audio_seconds,
            )
        )
    if isinstance(event, spec.Accepted):
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
            audio_kind=event.audio_kind,
        )
    )


def to_status(exc: BaseException) -> status_pb2.Status:
    """The one mapping from exceptions to gRPC statuses (with BadRequest details)."""
    if isinstance(exc, A2VError):
        code = getattr(code_pb2, exc.status_name)
        status = status_pb2.Status(code=code, message=exc.message)
        if exc.field and exc.status_name == "INVALID_ARGUMENT":
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=exc.field, description=exc.message
                        )
                    ]
                )
            )
            status.details.append(detail)
        return status
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error in the a2v server (this is a bug; it was "
        "logged with the request id)",
    )


async def _drain(requests: AsyncIterator[pb.GenerateRequest], seconds: float = 1.0) -> None:
    """Read what the client is still sending, briefly, before failing the call.

    A grpc.aio client whose write races the server's error status reports INTERNAL instead of
    that status (grpc/grpc#36066). Taking the client's remaining messages for up to a second
    lets it half-close normally and see the real status; a client that keeps sending longer
    gets the status anyway.
    """
    try:
        async with asyncio.timeout(seconds):
            async for _ in requests:
                pass
    except (TimeoutError, grpc.RpcError, StopAsyncIteration):
        pass
    except Exception:  # the stream is broken: nothing more to read
        pass


class Unparsable:
    """A request message that protobuf could not parse (e.g. a string that is not UTF-8)."""

    def __init__(self, kind: str, error: Exception) -> None:
        self.message = (
            f"a {kind} message could not be parsed ({error}): string fields must be valid "
            "UTF-8 and the bytes valid protobuf; use the a2v.v1 contract"
        )


def _lenient(message_class):
    """A request deserializer that hands undecodable bytes to the servicer as ``Unparsable``:
    grpc would answer them with INTERNAL itself, before any of our code ran."""

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Unparsable(message_class.DESCRIPTOR.name, exc)

    return parse


def _check_parsed(request) -> None:
    if isinstance(request, Unparsable):
        raise InvalidInput(request.message, field="message")


def add_to_server(servicer: AudioToVideoService, server) -> None:
    """Register the service like the generated ``add_AudioToVideoServicer_to_server``, but
    with request parsing that turns malformed bytes into INVALID_ARGUMENT."""
    handlers = {
        "Generate": grpc.stream_stream_rpc_method_handler(
            servicer.Generate,
            request_deserializer=_lenient(pb.GenerateRequest),
            response_serializer=pb.GenerateResponse.SerializeToString,
        ),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            servicer.ListModels,
            request_deserializer=_lenient(pb.ListModelsRequest),
            response_serializer=pb.ListModelsResponse.SerializeToString,
        ),
        "GetModel": grpc.unary_unary_rpc_method_handler(
            servicer.GetModel,
            request_deserializer=_lenient(pb.GetModelRequest),
            response_serializer=pb.ModelInfo.SerializeToString,
        ),
        "Cancel": grpc.unary_unary_rpc_method_handler(
            servicer.Cancel,
            request_deserializer=_lenient(pb.CancelRequest),
            response_serializer=pb.CancelResponse.SerializeToString,
        ),
        "Resume": grpc.unary_stream_rpc_method_handler(
            servicer.Resume,
            request_deserializer=_lenient(pb.ResumeRequest),
            response_serializer=pb.GenerateResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class AudioToVideoService(pb_grpc.AudioToVideoServicer):
    def __init__(self, backend: Backend, settings: Settings) -> None:
        self._backend = backend
        self._settings = settings
        self._sessions = SessionStore(
            detach_seconds=settings.resume_detach_seconds,
            retention_seconds=settings.resume_retention_seconds,
        )

    async def Generate(self, request_iterator, context: grpc.aio.ServicerContext):
        requests = request_iterator.__aiter__()
        request_id = "-"
        # Not "with start_as_current_span": gRPC does not close the generator of a cancelled
        # call, so a finally here may run later in another task, where detaching a context
        # fails ("Failed to detach context"). The span is current in this call's own task,
        # which ends with the call, and ends when the call is done.
        span = tracer.start_span("a2v.generate")
        otel_context.attach(trace.set_span_in_context(span))

        def end_span(_context=None) -> None:  # here at the end, or when gRPC drops the call
            if span.is_recording():  # not ended yet
                span.end()

        context.add_done_callback(end_span)
        try:
            try:
                try:
                    first = await anext(requests)
                except StopAsyncIteration:
                    raise InvalidInput(
                        "the stream was empty: send a config message first", field="config"
                    ) from None
                _check_parsed(first)
                if first.WhichOneof("message") != "config":
                    raise InvalidInput(
                        f"the first message must be a config, got "
                        f"{first.WhichOneof('message') or 'an empty message'}",
                        field="config",
                    )
                generate_spec, model = spec_from_config(first.config)
                request_id = generate_spec.request_id
                # JSON log lines of this call (and of the tasks it starts) carry the id.
                request_id_var.set(request_id)
                span.set_attribute("a2v.request_id", request_id)
                span.set_attribute("a2v.model", model.name)
                left = context.time_remaining()
                if left is not None:  # the caller's deadline goes on to every Triton call
                    call_deadline.set(time.monotonic() + left)
                generation = Generation(generate_spec, model, self._backend, self._settings)
                # The generation writes into a session that outlives this call, so a client
                # whose connection drops can Resume; this call is its first reader.
                session = self._sessions.start(
                    generation.run(input_events(requests)), resumable=generate_spec.resumable
                )
                if not generate_spec.resumable:
                    # The call's end (a client cancel included) stops the generation at once.
                    # Not a finally here: a cancel that lands while gRPC writes a response
                    # leaves this generator suspended at its yield, and its finally
                    # would run only when the garbage collector finalises it (measured under
                    # load: 21 codec threads still held 30 s after 500 cancelled calls).
                    # A weak reference: gRPC keeps its call objects in a reference cycle, which
                    # must not hold the session (and its generation) until a full collection.
                    session_ref = weakref.ref(session)
                    context.add_done_callback(lambda _: (s := session_ref()) and s.cancel())
                async for event in session.follow():
                    yield event_to_proto(event, session.token)
                log.info("request %s done", request_id)
            except A2VError as exc:
                log.info("request %s failed: %s %s", request_id, exc.status_name, exc.message)
                span.set_status(trace.StatusCode.ERROR, exc.status_name)
                await _drain(requests)
                await context.abort_with_status(rpc_status.to_status(to_status(exc)))
            except Exception as exc:  # a bug: log it fully, answer INTERNAL
                log.exception("request %s crashed", request_id)
                span.record_exception(exc)
                await context.abort_with_status(rpc_status.to_status(to_status(exc)))
        finally:
            end_span()

    async def Resume(self, request, context: grpc.aio.ServicerContext):
        if isinstance(request, Unparsable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        try:
            session = self._sessions.get(request.resume_token)
            after = request.last_sequence if request.HasField("last_sequence") else None
            async for event in session.follow(after):
                yield event_to_proto(event, session.token)
        except A2VError as exc:
            await context.abort_with_status(rpc_status.to_status(to_status(exc)))
        except Exception as exc:  # a bug
            log.exception("resume crashed")
            await context.abort_with_status(rpc_status.to_status(to_status(exc)))

    async def Cancel(self, request, context: grpc.aio.ServicerContext):
        if isinstance(request, Unparsable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        try:
            self._sessions.get(request.resume_token).cancel()
        except A2VError as exc:
            await context.abort_with_status(rpc_status.to_status(to_status(exc)))
        return pb.CancelResponse()

    async def ListModels(self, request, context):
        return pb.ListModelsResponse(
            models=[await self._model_info(m) for m in catalog.MODELS.values()]
        )

    async def GetModel(self, request, context):
        if isinstance(request, Unparsable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        model = catalog.MODELS.get(request.name)
        if model is None:
            await context.abort_with_status(
                rpc_status.to_status(
                    to_status(
                        NotFound(
                            f"unknown model {request.name!r}: "
                            f"choose one of {sorted(catalog.MODELS)}"
                        )
                    )
                )
            )
        return await self._model_info(model)

    async def _model_info(self, model: catalog.ModelSpec) -> pb.ModelInfo:
        return pb.ModelInfo(
            name=model.name,
            description=model.description,
            accepted_inputs=[_INPUT_ENUM[k] for k in model.inputs],
            native_fps=model.native_fps,
            resolutions=[_PRESET_ENUM[p] for p in model.presets],
            accepts_prompt=model.accepts_prompt,
            ready=await self._backend.ready(model.triton_models),
            # the last Triton model of a catalog entry is the one that renders
            lookahead_seconds=await self._backend.lookahead_seconds(model.triton_models[-1]),
        )
