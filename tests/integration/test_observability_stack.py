"""Observability against the real Triton: its OpenTelemetry spans join the server's trace, and
the server process's Prometheus endpoint reports Triton round trips."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest
from helpers import render
from media import PORTRAIT, ROOT
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from a2v_server.inference.backend import AvatarOptions
from a2v_server.inference.triton import TritonBackend
from a2v_server.inference.triton_process import TritonProcess
from a2v_server.observability.tracing import configure_tracing


class _Collector(http.server.ThreadingHTTPServer):
    """A stand-in OpenTelemetry collector: OTLP/HTTP, the JSON encoding Triton sends."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if "json" in (self.headers.get("content-type") or ""):
                    for resource in json.loads(body).get("resourceSpans", []):
                        for scope in resource.get("scopeSpans", []):
                            collector.spans.extend(scope.get("spans", []))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def collector():
    server = _Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


#: streams sent in the trace-join test (see there)
STREAMS = 10


def _tracer() -> trace.Tracer:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        configure_tracing()  # a real provider: the default one makes invalid, unsent contexts
    return trace.get_tracer("test")


async def test_triton_spans_join_the_server_trace(collector, tmp_path):
    url = f"http://127.0.0.1:{collector.server_port}/v1/traces"
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    with TritonProcess(
        ROOT / "model_repository",
        ROOT / ".venv-triton",
        models=("face_landmarks", "talking_avatar"),
        trace_url=url,
        log_path=tmp_path / "triton.log",
    ) as triton:
        backend = TritonBackend(triton.url)
        try:
            with _tracer().start_as_current_span("face") as face_span:
                (face,) = await backend.analyze_faces(portrait)
            # Streams: the server sends the trace context with every stream, but Triton 2.51
            # ignores it for some streamed requests and starts a trace of its own: 10-20% of
            # streams on an idle 2-core machine (2 of 20 and 1 of 10 in a row), now and then 2
            # or 3 in a row (CI lost 3 of 3). Holding the first request back 100 ms avoided it
            # in 30 of 30, so it looks like a race in Triton between a stream's metadata and
            # its first read; the server does not pay 100 ms of first-chunk latency for it.
            # So ten streams, of which at least one must join its caller's trace: if the
            # context were not sent at all, none would.
            render_spans = []
            for _ in range(STREAMS):
                stream = await backend.open_avatar(
                    portrait, face.landmarks, AvatarOptions(fps=25.0, seed=1)
                )
                with _tracer().start_as_current_span("render") as render_span:
                    await stream.send_audio(np.zeros(3200, np.float32), last=True)
                    frames = sum([len(b.frames) async for b in stream.batches()])
                assert frames == 5  # 0.2 s at 25 fps
                render_spans.append(render_span)
        finally:
            await backend.aclose()

        def ids(span) -> tuple[str, str]:
            context = span.get_span_context()
            return f"{context.span_id:016x}", f"{context.trace_id:032x}"

        def joined() -> tuple[bool, int]:
            parents = {s.get("parentSpanId"): s.get("traceId") for s in collector.spans}
            face_ok = parents.get(ids(face_span)[0]) == ids(face_span)[1]
            streams = sum(parents.get(i) == t for i, t in map(ids, render_spans))
            return face_ok, streams

        deadline = time.monotonic() + 30  # Triton exports in batches, every few seconds
        while time.monotonic() < deadline and not (joined()[0] and joined()[1] >= 1):
            time.sleep(0.25)
    # (stopping Triton flushes what it had not exported yet)
    face_ok, streams = joined()
    spans = [(s.get("name"), s.get("traceId"), s.get("parentSpanId")) for s in collector.spans]
    assert face_ok, spans
    assert streams >= 1, spans


def test_the_server_exports_triton_round_trips(stack, client, short_speech, tmp_path):
    render(client, short_speech, tmp_path / "clip.mp4", PORTRAIT, resolution="256x256")
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics") as reply:
        families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
    counts = {
        (s.labels["model"], s.labels["call"]): s.value
        for s in families["a2v_triton_request_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts[("face_landmarks", "infer")] >= 1
    assert counts[("talking_avatar", "stream_infer")] >= 1
    frames = families["a2v_frames_rendered"].samples
    assert sum(s.value for s in frames if s.name.endswith("_total")) > 0
