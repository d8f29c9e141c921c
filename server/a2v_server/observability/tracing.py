"""OpenTelemetry tracing, configured by the standard OTEL_* environment variables.

OTEL_TRACES_EXPORTER: ``otlp`` (endpoint, headers, protocol from OTEL_EXPORTER_OTLP_*),
``console``, or ``none`` (the default: spans are created but not exported).
OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES name the service (default "a2v-server").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

#: W3C trace context only (not the global propagator, which may carry baggage): what crosses
#: a process boundary in a2v is the trace id and span id, never user data.
_W3C = TraceContextTextMapPropagator()
_TRACE_HEADERS = ("traceparent", "tracestate")


def configure_tracing(extra_processor: SpanProcessor | None = None) -> TracerProvider:
    """Install a global tracer provider. ``extra_processor`` is for tests (in-memory export)."""
    os.environ.setdefault("OTEL_SERVICE_NAME", "a2v-server")
    provider = TracerProvider(resource=Resource.create())
    for name in filter(
        None, (s.strip() for s in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","))
    ):
        if name == "none":
            continue
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            )
            from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_exporter
            from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_exporter

            exporter = (
                http_exporter.OTLPSpanExporter()
                if protocol.startswith("http")
                else grpc_exporter.OTLPSpanExporter()
            )
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (use otlp, console, none)", name)
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)
    return provider


def extract_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The caller's trace context from gRPC metadata (W3C ``traceparent``), or an empty one.

    Only the trace-context headers are read: baggage from outside is not trusted into spans.
    """
    carrier = {
        key.lower(): value
        for key, value in (metadata or ())
        if key.lower() in _TRACE_HEADERS and isinstance(value, str)
    }
    return _W3C.extract(carrier)


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for an outgoing call; empty
    outside a sampled or valid span, so callers can pass it unconditionally."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier
