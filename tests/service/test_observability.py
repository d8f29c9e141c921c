"""Observability, service tier: traces joined across client -> server, the Prometheus
endpoint, and JSON logs with trace ids. The real grpc.aio server runs in-process with the fake
backend. Trace headers on the Triton client calls (no server): tests/unit/test_telemetry.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request

import pytest
from media import portrait_png, tone_wav
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, Client, GenerateOptions, bytes_audio
from a2v_server.observability.logs import JsonFormatter
from a2v_server.observability.metrics import start_metrics_server

PROMPT = "a very private prompt"


async def _generate(address: str, **options) -> list[pb.GenerateResponse]:
    async with AsyncClient(address, timeout=60) as client:
        return [
            r
            async for r in client.generate(
                audio=bytes_audio(tone_wav(1.0, rate=16000)),
                image=portrait_png(),
                options=GenerateOptions(resolution="256x256", **options),
            )
        ]


def _generate_spans(exporter: InMemorySpanExporter, trace_id: int) -> list:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == "a2v.generate" and s.context.trace_id == trace_id
    ]


# --- traces -----------------------------------------------------------------------------------
async def test_async_client_span_is_the_parent_of_the_server_span(service, spans):
    address = service.address
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        await _generate(address)
    (server_span,) = _generate_spans(spans, caller.get_span_context().trace_id)
    assert server_span.parent is not None
    assert server_span.parent.span_id == caller.get_span_context().span_id
    # the pipeline's spans hang under it, in the same trace
    render = [s for s in spans.get_finished_spans() if s.name == "inference.render"]
    assert any(s.context.trace_id == caller.get_span_context().trace_id for s in render)


async def test_blocking_client_propagates_too(service, spans):
    address = service.address

    def call() -> int:
        with (
            trace.get_tracer("test").start_as_current_span("caller") as caller,
            Client(address, timeout=60) as client,
        ):
            list(
                client.generate(
                    audio=bytes_audio(tone_wav(0.5, rate=16000)),
                    image=portrait_png(),
                    options=GenerateOptions(resolution="256x256"),
                )
            )
        return caller.get_span_context().trace_id

    trace_id = await asyncio.to_thread(call)
    assert len(_generate_spans(spans, trace_id)) == 1


async def test_without_a_caller_span_the_server_starts_a_trace(service, spans):
    address = service.address
    spans.clear()
    await _generate(address)
    (server_span,) = [s for s in spans.get_finished_spans() if s.name == "a2v.generate"]
    assert server_span.parent is None


# --- metrics ----------------------------------------------------------------------------------
def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def metrics_port():
    started = start_metrics_server("127.0.0.1:0")
    assert started is not None
    server, port = started
    yield port
    server.shutdown()


async def test_metrics_move_after_a_generation_and_a_failing_call(service, metrics_port):
    address, backend = service.address, service.backend
    model = (("model", "talking_avatar"),)
    before = await asyncio.to_thread(_scrape, metrics_port)

    responses = await _generate(address)
    frames = responses[-1].summary.frames
    backend.faces = False
    with pytest.raises(A2VClientError):
        await _generate(address)
    after = await asyncio.to_thread(_scrape, metrics_port)

    def delta(name: str, labels: tuple = ()) -> float:
        key = (name, tuple(sorted(labels)))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("a2v_frames_rendered_total", model) == frames == 25
    assert delta("a2v_first_chunk_seconds_count", model) == 1
    assert delta("a2v_realtime_factor_count", model) == 1
    assert delta("a2v_realtime_factor_sum", model) > 0
    assert delta("a2v_errors_total", (("method", "Generate"), ("code", "INVALID_ARGUMENT"))) == 1
    ok = (("method", "Generate"), ("code", "OK"))
    assert delta("a2v_request_duration_seconds_count", ok) == 1
    assert after[("a2v_active_streams", model)] == 0
    # nothing from the request in any label
    text = json.dumps(sorted(map(str, after)))
    assert PROMPT not in text and "request_id" not in text


async def test_active_streams_gauge_follows_a_running_stream(service, metrics_port):
    address = service.address
    release = asyncio.Event()

    async def audio():
        yield pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 1600, sample_rate=16000, channels=1))
        await release.wait()

    async with AsyncClient(address, timeout=60) as client:
        gen = client.generate(
            audio=audio(), image=portrait_png(), options=GenerateOptions(resolution="256x256")
        )
        async for response in gen:
            if response.HasField("accepted"):
                break
        running = await asyncio.to_thread(_scrape, metrics_port)
        release.set()
        async for _ in gen:
            pass
    ended = await asyncio.to_thread(_scrape, metrics_port)
    key = ("a2v_active_streams", (("model", "talking_avatar"),))
    assert running[key] == 1 and ended[key] == 0


# --- logs -------------------------------------------------------------------------------------
async def test_json_logs_carry_the_trace_and_request_ids_and_no_prompt(service, spans):
    address = service.address
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("a2v_server")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            await _generate(address, request_id="req-42", prompt=PROMPT)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    (server_span,) = _generate_spans(spans, caller.get_span_context().trace_id)
    (done,) = [r for r in records if r["message"] == "request req-42 done"]
    assert done["trace_id"] == f"{server_span.context.trace_id:032x}"
    assert done["span_id"] == f"{server_span.context.span_id:016x}"
    assert done["request_id"] == "req-42"
    assert {"timestamp", "level", "logger"} <= set(done)
    assert PROMPT not in sink.getvalue()
