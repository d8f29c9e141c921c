"""Optional trace propagation: the caller's OpenTelemetry context travels to the server.

When the OpenTelemetry API is importable (it is not a dependency of the client), every call
carries the current context as gRPC metadata (W3C ``traceparent``, through the globally
configured propagator), so the server's spans join the caller's trace. Without it, or outside
any span, nothing is added.
"""

from __future__ import annotations

from typing import Any

import grpc

from .interceptors import MetadataInterceptor, add_metadata, aio_metadata_interceptors

try:
    from opentelemetry import propagate
except ImportError:  # the client works without OpenTelemetry
    # the module's name stands for "absent" here; mypy only knows it as a module
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
    return add_metadata(details, extra)


class TraceInterceptor(MetadataInterceptor):
    """Blocking channels: adds ``traceparent`` to every call made inside a span."""

    def __init__(self) -> None:
        super().__init__(_with_trace)


def aio_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The asyncio interceptors, one per call kind; none without OpenTelemetry."""
    if propagate is None:
        return []
    return aio_metadata_interceptors(_with_trace)
