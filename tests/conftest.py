"""Shared pytest setup for every tier: tests/ on sys.path (the helpers in media.py and pki.py),
and the fixtures both the unit and the service tier use."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def spans():
    """An in-memory exporter on the global tracer provider, which is installed here if nothing
    has yet (a process gets one provider; spans made without it have no ids)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from a2v_server.observability.tracing import configure_tracing

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = configure_tracing()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate: PEM paths."""
    from pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory) -> str:
    """An API keys file holding pki.KEY and pki.OTHER_KEY."""
    from pki import write_keys_file

    return write_keys_file(tmp_path_factory.mktemp("keys") / "api-keys")
