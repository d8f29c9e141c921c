"""Prometheus metrics, and the server interceptor that feeds them and joins callers' traces.

Served over HTTP at ``Settings.metrics_listen`` (``/metrics``, plaintext, no authentication:
nothing in it is sensitive). Labels are bounded and carry no request data: the model name (from
the catalog), the gRPC method name and status code, the Triton model and call kind, and the
lipsync mouth path.

The interceptor watches the *outgoing* Generate messages (Accepted, chunks, Progress, Summary)
rather than the pipeline's internals, so the numbers are what a client sees and the pipeline
stays free of metrics code. It also makes the caller's W3C trace context (``traceparent``
metadata) the current context of the call, so the servicer's ``a2v.generate`` span is a child
of the client's span.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from a2v_server.observability.tracing import extract_context

log = logging.getLogger(__name__)

#: only the a2v service is measured: health probes every second would drown the numbers
MEASURED_PREFIX = "/a2v."

ACTIVE_STREAMS = Gauge(
    "a2v_active_streams", "Generate streams running now (accepted, not yet ended)", ["model"]
)
FIRST_CHUNK_SECONDS = Histogram(
    "a2v_first_chunk_seconds",
    "Time from the start of a Generate call to its first media chunk (the init segment)",
    ["model"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
)
FRAMES_RENDERED = Counter(
    "a2v_frames_rendered", "Video frames rendered and sent to clients", ["model"]
)
REALTIME_FACTOR = Histogram(
    "a2v_realtime_factor",
    "Per finished stream: seconds of audio rendered per second of wall time (>1 = faster "
    "than real time)",
    ["model"],
    buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0),
)
REQUEST_SECONDS = Histogram(
    "a2v_request_duration_seconds",
    "Duration of a2v calls, by method and final gRPC status code",
    ["method", "code"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
ERRORS = Counter(
    "a2v_errors", "a2v calls that ended with a status other than OK", ["method", "code"]
)
LIPSYNC_MOUTH_FRAMES = Counter(
    "a2v_lipsync_mouth_frames",
    "Frames of finished lipsync streams by how the mouth was made: passed_through (no face), "
    "warped, retrieved (an open mouth from the speaker's own video)",
    ["source"],
)
TRITON_SECONDS = Histogram(
    "a2v_triton_request_seconds",
    "Round trip of one Triton request as the server sees it: a face-analysis infer, or a "
    "streamed render request from sending it to its first frames",
    ["model", "call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TRITON_SEQUENCES = Counter(
    "a2v_triton_sequences",
    "Model sequences placed on each Triton endpoint (a failover places one more)",
    ["endpoint"],
)
TRITON_FAILOVERS = Counter(
    "a2v_triton_failovers",
    "Sequences moved mid-stream away from a Triton that died or stalled, by that Triton",
    ["endpoint"],
)


def start_metrics_server(
    listen: str, registry: CollectorRegistry = REGISTRY
) -> tuple[Any, int] | None:
    """Serve ``/metrics`` on ``host:port`` (port 0 = any free) in a daemon thread.

    Returns ``(server, port)`` (call ``server.shutdown()`` to stop), or None when ``listen``
    is empty (metrics off).
    """
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    bound = server.server_port
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return server, bound


class _CallObserver:
    """What one call did, turned into metrics when it ends."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.t0 = time.monotonic()
        self.model: str | None = None
        self.first_chunk_seen = False
        self.frames = 0

    def saw(self, response: Any) -> None:
        """Account for one outgoing message (only GenerateResponse carries anything)."""
        kind = response.WhichOneof("message") if hasattr(response, "WhichOneof") else None
        if kind == "accepted":
            self.model = response.accepted.model
            ACTIVE_STREAMS.labels(self.model).inc()
        elif kind == "chunk" and not self.first_chunk_seen:
            self.first_chunk_seen = True
            FIRST_CHUNK_SECONDS.labels(self.model or "").observe(time.monotonic() - self.t0)
        elif kind == "progress":
            self._frames(response.progress.frames_done)
        elif kind == "summary":
            summary = response.summary
            self._frames(summary.frames)
            if summary.timings.total_seconds > 0:
                REALTIME_FACTOR.labels(self.model or "").observe(
                    summary.duration_seconds / summary.timings.total_seconds
                )
            if summary.HasField("mouth_sources"):
                for source in ("passed_through", "warped", "retrieved"):
                    count = getattr(summary.mouth_sources, source)
                    LIPSYNC_MOUTH_FRAMES.labels(source).inc(count)

    def _frames(self, done: int) -> None:
        # Progress and Summary carry running totals: count each frame once, and count the
        # frames of a stream that fails or is cancelled midway too.
        if done > self.frames:
            FRAMES_RENDERED.labels(self.model or "").inc(done - self.frames)
            self.frames = done

    def ended(self, code: str) -> None:
        REQUEST_SECONDS.labels(self.method, code).observe(time.monotonic() - self.t0)
        if code != "OK":
            ERRORS.labels(self.method, code).inc()
        if self.model is not None:
            ACTIVE_STREAMS.labels(self.model).dec()


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"  # the client cancelled, or its deadline passed
    if isinstance(exc, grpc.aio.AbortError):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
        if isinstance(code, int):
            return _CODE_NAMES.get(code, "UNKNOWN")
    return "UNKNOWN"


_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: trace context from the caller, and the call metrics.

    Put it first in the list so that calls refused by later interceptors (no API key, too
    many streams) are counted with their status codes too.
    """

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(MEASURED_PREFIX):
            return handler
        return _wrap(handler, method.rsplit("/", 1)[-1], handler_call_details.invocation_metadata)


def _wrap(handler: grpc.RpcMethodHandler, method: str, metadata: Any) -> grpc.RpcMethodHandler:
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        streaming_handler = handler.stream_stream or handler.unary_stream
        assert streaming_handler is not None
        inner_streaming: Callable[..., Any] = streaming_handler  # async under grpc.aio

        async def streaming(request_or_iterator, context):
            observer = _CallObserver(method)
            # The caller's trace context, for this call's task (the task ends with the call).
            # Never detached: gRPC does not close the generator of a cancelled call, so its
            # finally may run later in another task, where a detach fails.
            otel_context.attach(extract_context(metadata))
            code = "OK"
            try:
                async for response in inner_streaming(request_or_iterator, context):
                    observer.saw(response)
                    yield response
            except BaseException as exc:
                code = _code_of(exc, context)
                raise
            finally:
                observer.ended(code)

        factory = (
            grpc.stream_stream_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return factory(streaming, **kwargs)

    inner = handler.stream_unary or handler.unary_unary
    assert inner is not None

    async def unary(request_or_iterator, context):
        observer = _CallObserver(method)
        token = otel_context.attach(extract_context(metadata))
        code = "OK"
        try:
            result = inner(request_or_iterator, context)
            return await result if inspect.isawaitable(result) else result
        except BaseException as exc:
            code = _code_of(exc, context)
            raise
        finally:
            observer.ended(code)
            otel_context.detach(token)

    factory = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return factory(unary, **kwargs)
