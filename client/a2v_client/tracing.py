"""Optional trace propagation: the caller's OpenTelemetry context travels to the server.

When the OpenTelemetry API is importable (it is not a dependency of the client), every call
carries the current context as gRPC metadata (W3C ``traceparent``, through the globally
configured propagator), so the server's spans join the caller's trace. Without it, or outside
any span, nothing is added.
"""

from __future__ import annotations

from typing import Any

import grpc

try:
    from opentelemetry import propagate
except ImportError:  # the client works without OpenTelemetry
    propagate = None  # type: ignore[assignment]


def available() -> bool:
    return propagate is not None


def trace_metadata() -> list[tuple[str, str]]:
    """The current trace context as metadata pairs; empty without OpenTelemetry or a span."""
    if propagate is None:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key.lower(), value) for key, value in carrier.items()]


def _with_trace(details: Any) -> Any:
    extra = trace_metadata()
    if not extra:
        return details
    return details._replace(metadata=[*(details.metadata or ()), *extra])


class TraceInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Blocking channels: adds ``traceparent`` to every call made inside a span."""

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_with_trace(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(_with_trace(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(_with_trace(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(_with_trace(details), request_iterator)


# grpc.aio files an interceptor under the first kind it implements only: one class per kind.
# grpc.aio runs them in a task created at call time, which copies the caller's context.
class _AioUnaryUnaryTrace(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_with_trace(details), request)


class _AioUnaryStreamTrace(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(_with_trace(details), request)


class _AioStreamUnaryTrace(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(_with_trace(details), request_iterator)


class _AioStreamStreamTrace(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(_with_trace(details), request_iterator)


def aio_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The asyncio interceptors, one per call kind; none without OpenTelemetry."""
    if propagate is None:
        return []
    return [
        _AioUnaryUnaryTrace(),
        _AioUnaryStreamTrace(),
        _AioStreamUnaryTrace(),
        _AioStreamStreamTrace(),
    ]
