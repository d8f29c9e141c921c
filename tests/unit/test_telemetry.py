"""Observability units, no server: trace headers on the Triton client calls (a fake tritonclient
records them), the metrics endpoint switched off, the log and metrics settings. With a running
server: tests/service/test_observability.py."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry import trace
from triton_channel import UnaryChannel

from a2v_server.inference.sequence import TritonSequenceStream
from a2v_server.inference.triton import TritonBackend
from a2v_server.observability.metrics import start_metrics_server
from a2v_server.settings import Settings


class _FakeTritonClient:
    """Records what TritonBackend hands to Triton's unary ModelInfer (on the client's channel)
    and to stream_infer."""

    def __init__(self) -> None:
        self.headers: dict[str, dict] = {}
        self._channel = UnaryChannel(self._faces)

    def _faces(self, request) -> dict[str, np.ndarray]:
        self.headers["infer"] = self._channel.metadata[-1]
        return {
            "BOXES": np.zeros((0, 4), np.float32),
            "SCORES": np.zeros(0, np.float32),
            "LANDMARKS": np.zeros((0, 68, 2), np.float32),
        }

    def stream_infer(self, inputs_iterator, headers=None, **_options):
        self.headers["stream_infer"] = headers

        class Stream:
            def __aiter__(self):
                return self

            async def __anext__(self):
                raise StopAsyncIteration

            def cancel(self):
                pass

        return Stream()


async def test_traceparent_reaches_the_tritonclient_calls(spans):
    # `spans` installs the SDK tracer provider: without it spans have no ids to propagate
    backend = TritonBackend("127.0.0.1:1")
    await backend._client.close()
    fake = backend._client = _FakeTritonClient()
    with trace.get_tracer("test").start_as_current_span("render") as span:
        await backend.analyze_faces(np.zeros((8, 8, 3), np.uint8))
        stream = TritonSequenceStream(fake, "talking_avatar", {"FPS": np.array([25.0], np.float32)})
        await stream.send_audio(np.zeros(640, np.float32), last=True)
        _ = [b async for b in stream.batches()]
    ids = span.get_span_context()
    expected = f"00-{ids.trace_id:032x}-{ids.span_id:016x}-"  # then the flags (sampled, ...)
    assert fake.headers["infer"]["traceparent"].startswith(expected)
    assert fake.headers["stream_infer"]["traceparent"].startswith(expected)


def test_metrics_off_when_listen_is_empty():
    assert start_metrics_server("") is None


def test_log_format_setting_is_validated():
    assert Settings(log_format="json").validated().log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml").validated()
    with pytest.raises(ValueError, match="metrics_listen"):
        Settings(metrics_listen="9464").validated()
