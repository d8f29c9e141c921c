"""Hostile-input tier: malformed requests against the real server (and Triton), started once
for this folder with a short idle timeout so the silent-client case takes seconds, not 30."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from hostile_media import Media, make_media
from loopback import loopback_stack

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import Client

#: the server's idle timeout in this tier (seconds): the DEADLINE_EXCEEDED case waits this long
IDLE_TIMEOUT = 3.0


def pytest_collection_modifyitems(items):
    for item in items:
        if "hostile" in str(item.fspath) and "test_corpus" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def hostile_stack(tmp_path_factory):
    env = {"A2V_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT)}
    with loopback_stack(tmp_path_factory, "hostile-stack-logs", env) as running:
        yield running


@pytest.fixture(scope="package")
def hostile_client(hostile_stack) -> Client:
    with Client(hostile_stack.address, timeout=60) as c:
        yield c


@pytest.fixture(scope="package")
def generate_call(hostile_stack):
    """Raw Generate: takes GenerateRequest messages or pre-serialised bytes (for payloads that
    the protobuf library refuses to build, such as invalid UTF-8)."""
    with grpc.insecure_channel(hostile_stack.address) as channel:
        yield channel.stream_stream(
            "/a2v.v1.AudioToVideo/Generate",
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=pb.GenerateResponse.FromString,
        )


@pytest.fixture(scope="package")
def media(tmp_path_factory) -> Media:
    return make_media(Path(tmp_path_factory.mktemp("hostile-media")))
