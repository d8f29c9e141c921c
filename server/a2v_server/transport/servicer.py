"""The AudioToVideo gRPC service: each handler converts (config.py, convert.py), runs the
domain code, and ends failures through ``status.abort_with``. A Generate or Resume call reads a
session (sessions.py) that outlives it; calls.py ties the call to it. No validation or media
logic lives here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server import catalog
from a2v_server.errors import A2VError, DeadlineExceeded, InvalidInput, ResumeTooLate
from a2v_server.inference.backend import Backend, call_deadline
from a2v_server.observability.logs import request_id_var
from a2v_server.pipeline.analysis import analyze
from a2v_server.pipeline.face_list import list_faces
from a2v_server.pipeline.generation import Generation
from a2v_server.settings import Settings
from a2v_server.transport.calls import CallInput, SlotClaim, on_call_end
from a2v_server.transport.config import analyze_spec_from_config, find_model, spec_from_config
from a2v_server.transport.convert import (
    analysis_to_proto,
    detected_face,
    event_to_proto,
    input_events,
    model_info,
)
from a2v_server.transport.forward import PeerError, Peers, forwarded, own_address
from a2v_server.transport.parsing import Unparsable, check_parsed, lenient
from a2v_server.transport.security import StreamLimiter, caller_key
from a2v_server.transport.session import Reader, Session
from a2v_server.transport.sessions import Cancelled, SessionStore
from a2v_server.transport.status import abort_with, drain
from a2v_server.transport.tokens import OwnedElsewhere, TokenSigner, load_resume_key, unknown_token

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AudioToVideo"].full_name
#: (client streams, server streams) -> grpc's handler factory for such a method
_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_to_server(servicer: AudioToVideoService, server: grpc.aio.Server) -> None:
    """Register every method of the contract like the generated
    ``add_AudioToVideoServicer_to_server``, but with request parsing that turns malformed bytes
    into INVALID_ARGUMENT."""
    handlers = {
        method.name: _HANDLER_KINDS[method.client_streaming, method.server_streaming](
            getattr(servicer, method.name),
            request_deserializer=lenient(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in pb.DESCRIPTOR.services_by_name["AudioToVideo"].methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class AudioToVideoService(pb_grpc.AudioToVideoServicer):
    def __init__(self, backend: Backend, settings: Settings) -> None:
        self._backend = backend
        self._settings = settings
        #: running generations per API key (security.caller_key); a generation holds its
        #: slot until it ends, also after its call ended (resumable, rendering detached)
        self.limiter = StreamLimiter(settings.max_streams_per_key)
        key = load_resume_key(settings.resume_key_file) if settings.resume_key_file else None
        address = own_address(settings)  # (may resolve this host's name: once)
        self._sessions = SessionStore(
            detach_seconds=settings.resume_detach_seconds,
            retention_seconds=settings.resume_retention_seconds,
            stall_seconds=settings.idle_timeout_seconds,
            signer=TokenSigner(key, address),
        )
        #: the other replicas, for the Resume and Cancel of their sessions (forward.py)
        self.peers = Peers(settings, address)
        #: shutting down: new generations are refused, Resume and Cancel still served
        self.draining = False

    def drain(self) -> None:
        """Refuse new generations from now on (UNAVAILABLE: the client retries elsewhere)."""
        self.draining = True

    @property
    def settled(self) -> bool:
        """Nothing running, nothing a client could still resume (see SessionStore.settled)."""
        return self._sessions.settled()

    async def Generate(
        self,
        request_iterator: AsyncIterator[pb.GenerateRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.GenerateResponse]:
        key = caller_key.get()
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "this server replica is shutting down: retry, and another replica takes the "
                "generation",
            )
            return
        slot = self.limiter.try_acquire(key)
        if slot is None:
            log.info("key %s is over its limit of %d generations", key, self.limiter.limit)
            await context.abort_with_status(self.limiter.refusal(key))
            return
        # The slot is this call's until its session takes it; freed here at the latest when
        # the call ends in any way (the finally below may run late, see there).
        claim = SlotClaim(slot)
        context.add_done_callback(claim.call_ended)  # type: ignore[arg-type]  # types-grpcio
        requests = request_iterator.__aiter__()
        request_id = "-"
        session: Session | None = None
        reader: Reader | None = None
        # Not "with start_as_current_span": gRPC does not close the generator of a cancelled
        # call, so a finally here may run later in another task, where detaching a context
        # fails ("Failed to detach context"). The span is current in this call's own task,
        # which ends with the call, and ends when the call is done.
        span = tracer.start_span("a2v.generate")
        otel_context.attach(trace.set_span_in_context(span))

        def end_span(_context: Any = None) -> None:  # here at the end, or when gRPC drops the call
            if span.is_recording():  # not ended yet
                span.end()

        context.add_done_callback(end_span)  # type: ignore[arg-type]  # types-grpcio: a class
        try:
            try:
                # Headers now say "admitted": the asyncio client waits for them before it
                # writes, so a refusal reaches it as its real status (grpc/grpc#36066: a write
                # racing a server abort turns the status into INTERNAL in grpc.aio clients).
                await context.send_initial_metadata(())
                first = await self._first_request(requests)
                check_parsed(first)
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
                call_input = CallInput(requests)
                # The generation writes into a session that outlives this call, so a client
                # whose connection drops can Resume; this call is its first reader. The
                # session holds the stream slot from here until the generation ends.
                session = self._sessions.start(
                    generation.run(input_events(call_input)),
                    resumable=generate_spec.resumable,
                    key=key,
                    on_end=claim.take(),
                )
                call_input.feeds(session)
                reader = session.attach()
                # The call's end detaches its reader (and, for a session that is not
                # resumable, stops the generation at once), a client cancel included.
                # Not a finally here: a cancel that lands while gRPC writes a response
                # leaves this generator suspended at its yield, and its finally
                # would run only when the garbage collector finalises it (measured under
                # load: 21 codec threads still held 30 s after 500 cancelled calls).
                # Weak references: gRPC keeps its call objects in a reference cycle, which
                # must not hold the session (and its generation) until a full collection.
                context.add_done_callback(on_call_end(session, reader))  # type: ignore[arg-type]
                async for event in reader:
                    yield event_to_proto(event, session.token)
                log.info("request %s done", request_id)
            except Cancelled as exc:
                log.info("request %s cancelled: %s", request_id, exc.message)
                span.set_status(trace.StatusCode.ERROR, "CANCELLED")
                await context.abort(grpc.StatusCode.CANCELLED, exc.message)
            except A2VError as exc:
                log.info("request %s failed: %s %s", request_id, exc.status_name, exc.message)
                span.set_status(trace.StatusCode.ERROR, exc.status_name)
                if session is None or session.done:  # else its generation still reads them
                    await drain(requests)
                await abort_with(context, exc)
            except Exception as exc:  # a bug: log it fully, answer INTERNAL
                log.exception("request %s crashed", request_id)
                span.record_exception(exc)
                await abort_with(context, exc)
        finally:
            claim.call_ended()
            if reader is not None:
                reader.close()
            end_span()

    async def Analyze(
        self,
        request_iterator: AsyncIterator[pb.AnalyzeRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.AudioAnalysis:
        """Config, audio, end in; one AudioAnalysis out."""
        started = time.monotonic()

        async def work(requests: AsyncIterator[pb.AnalyzeRequest]) -> pb.AudioAnalysis:
            first = await self._first_request(requests)
            check_parsed(first)
            if first.WhichOneof("message") != "config":
                raise InvalidInput(
                    f"the first message must be a config, got "
                    f"{first.WhichOneof('message') or 'an empty message'}",
                    field="config",
                )
            spec = analyze_spec_from_config(first.config)
            request_id_var.set(spec.request_id)  # on the log lines of this call
            result = await analyze(spec, input_events(requests), self._backend, self._settings)
            return analysis_to_proto(result, spec.request_id, time.monotonic() - started)

        return await self._one_answer(request_iterator, context, "analyze", work)

    async def ListFaces(
        self,
        request_iterator: AsyncIterator[pb.FacesRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.FacesResponse:
        """Image or video in, the faces out."""

        async def work(requests: AsyncIterator[pb.FacesRequest]) -> pb.FacesResponse:
            found = await list_faces(input_events(requests), self._backend, self._settings)
            return pb.FacesResponse(
                faces=[detected_face(f) for f in found.faces],
                width=found.width,
                height=found.height,
                duration_seconds=found.duration_seconds,
                frames_scanned=found.frames_scanned,
            )

        return await self._one_answer(request_iterator, context, "list_faces", work)

    async def _one_answer(
        self,
        request_iterator: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        what: str,
        work: Callable[[AsyncIterator[Any]], Awaitable[Any]],
    ) -> Any:
        """A call that streams its input in and answers once (Analyze, ListFaces). It holds a
        stream slot of the caller's key while it runs, like a Generate (decoding and the model
        cost CPU too). Admitted first, refused after: the client writes its input once it has
        the headers, and a refusal waits for it (drain), so that the client sees the real
        status rather than grpc.aio's INTERNAL for a write that raced the end of a call with
        no response (grpc/grpc#36066; seen here about once in ten refusals)."""
        requests = request_iterator.__aiter__()
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "this server replica is shutting down: retry, and another replica takes it",
            )
        await context.send_initial_metadata(())
        key = caller_key.get()
        slot = self.limiter.try_acquire(key)
        if slot is None:
            await drain(requests)
            await context.abort_with_status(self.limiter.refusal(key))
            raise AssertionError("unreachable: abort_with_status raises")
        try:
            with tracer.start_as_current_span(f"a2v.{what}"):
                left = context.time_remaining()
                if left is not None:  # the caller's deadline goes on to the Triton call
                    call_deadline.set(time.monotonic() + left)
                answer = await work(requests)
                log.info("%s done", what)
                return answer
        except A2VError as exc:
            log.info("%s failed: %s %s", what, exc.status_name, exc.message)
            await drain(requests)
            await abort_with(context, exc)
        except Exception as exc:  # a bug: log it fully, answer INTERNAL
            log.exception("%s crashed", what)
            await abort_with(context, exc)
        finally:
            slot.release()
        raise AssertionError("unreachable: abort_with raises")

    async def _first_request(self, requests: AsyncIterator[Any]) -> Any:
        """The config message, within the idle timeout: a stream that sends nothing must not
        hold a stream slot."""
        seconds = self._settings.idle_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                return await anext(requests)
        except StopAsyncIteration:
            raise InvalidInput(
                "the stream was empty: send a config message first", field="config"
            ) from None
        except TimeoutError:
            raise DeadlineExceeded(
                f"no config message within {seconds:g} s of opening the stream: send the "
                "config first, as soon as the stream is open"
            ) from None

    async def Resume(
        self, request: pb.ResumeRequest | Unparsable, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        try:
            check_parsed(request)
            assert isinstance(request, pb.ResumeRequest)
            try:
                session = self._sessions.get(request.resume_token, caller_key.get())
            except OwnedElsewhere as elsewhere:
                if forwarded(context):  # one hop: the token's owner is not this replica
                    raise unknown_token() from None
                async for response in self.peers.resume(elsewhere.owner, request, context):
                    yield response
                return
            if not session.resumable:
                raise ResumeTooLate(
                    "this generation was started with resumable=false, so nothing is kept for "
                    "a Resume: start it again"
                )
            after = request.last_sequence if request.HasField("last_sequence") else None
            # No stream slot: the generation holds one (until it ends); a session takes a
            # bounded number of readers.
            reader = session.attach(after)
            context.add_done_callback(on_call_end(None, reader))  # type: ignore[arg-type]
            try:
                async for event in reader:
                    yield event_to_proto(event, session.token)
            finally:
                reader.close()
        except Cancelled as exc:
            await context.abort(grpc.StatusCode.CANCELLED, exc.message)
        except PeerError as exc:
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            if not isinstance(exc, A2VError):
                log.exception("resume crashed")  # a bug
            await abort_with(context, exc)

    async def Cancel(
        self, request: pb.CancelRequest | Unparsable, context: grpc.aio.ServicerContext
    ) -> pb.CancelResponse:
        try:
            check_parsed(request)
            assert isinstance(request, pb.CancelRequest)
            try:
                session = self._sessions.get(request.resume_token, caller_key.get())
            except OwnedElsewhere as elsewhere:
                if forwarded(context):
                    raise unknown_token() from None
                return await self.peers.cancel(elsewhere.owner, request, context)
            session.cancel(Cancelled("the generation was cancelled by Cancel(resume_token)"))
        except PeerError as exc:
            await context.abort(exc.code, exc.message)
        except A2VError as exc:
            await abort_with(context, exc)
        return pb.CancelResponse()

    async def ListModels(
        self, request: pb.ListModelsRequest | Unparsable, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[await self._model_info(m) for m in catalog.MODELS.values()]
        )

    async def GetModel(
        self, request: pb.GetModelRequest | Unparsable, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        try:
            check_parsed(request)
            assert isinstance(request, pb.GetModelRequest)
            model = find_model(request.name, field="name")
        except A2VError as exc:
            await abort_with(context, exc)
        return await self._model_info(model)

    async def _model_info(self, model: catalog.OfferedModel) -> pb.ModelInfo:
        return model_info(
            model,
            ready=await self._backend.ready(model.triton_models),
            lookahead_seconds=await self._backend.lookahead_seconds(model.renderer),
        )
