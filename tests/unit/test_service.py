"""Service tier: the real grpc.aio server in-process, a fake in place of Triton."""

from __future__ import annotations

import asyncio
import io
import os
import wave

import av
import numpy as np
import pytest
from fake_backend import FakeBackend
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, bytes_audio, pcm_audio
from a2v_server.main import create_server
from a2v_server.observability.tracing import configure_tracing
from a2v_server.settings import Settings

SPANS = InMemorySpanExporter()
configure_tracing(SimpleSpanProcessor(SPANS))


def _portrait_png() -> bytes:
    import cv2

    img = np.zeros((240, 320, 3), np.uint8)
    img[:] = (40, 120, 200)
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def _tone_wav(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


@pytest.fixture
async def served():
    backend = FakeBackend()
    server, port, watcher = create_server(Settings(listen="127.0.0.1:0"), backend)
    await server.start()
    await watcher.check_once()
    client = AsyncClient(f"127.0.0.1:{port}", timeout=60)
    yield client, backend
    await client.close()
    await server.stop(None)


async def _collect(client, audio, **options):
    return [
        r
        async for r in client.generate(
            audio=audio, image=_portrait_png(), options=GenerateOptions(**options)
        )
    ]


async def test_stream_decodes_to_the_right_video(served):
    client, _ = served
    responses = await _collect(
        client, bytes_audio(_tone_wav(2.0), 4096), resolution="320x240", fps=30
    )
    data = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 60 == responses[-1].summary.frames
    assert frames[0].shape == (240, 320, 3)
    assert np.abs(frames[10].astype(int) - [40, 120, 200]).mean() < 6  # colours survive
    assert responses[-1].summary.timings.first_chunk_seconds > 0


async def test_spans_cover_decode_inference_encode(served):
    client, _ = served
    SPANS.clear()
    await _collect(client, bytes_audio(_tone_wav(0.5)), resolution="256x256")
    names = {s.name for s in SPANS.get_finished_spans()}
    assert {
        "a2v.generate",
        "decode.image",
        "decode.audio",
        "inference.face_analysis",
        "inference.render",
        "encode",
    } <= names


async def test_pcm_input(served):
    client, _ = served
    pcm = (np.zeros(8000 * 2, "<i2")).tobytes()  # 1 s stereo 8 kHz silence
    pieces = [pcm[i : i + 999] for i in range(0, len(pcm), 999)]  # odd sizes split samples
    responses = await _collect(client, pcm_audio(pieces, 8000, 2), resolution="256x256")
    assert responses[-1].summary.frames == 25


async def test_no_face_is_invalid_argument(served):
    client, backend = served
    backend.faces = False
    with pytest.raises(A2VClientError) as info:
        await _collect(client, bytes_audio(_tone_wav(0.5)))
    assert info.value.code == "INVALID_ARGUMENT" and "no face" in info.value.message
    assert info.value.violations == [("image", info.value.message)]


async def test_client_cancel_closes_the_model_stream(served):
    client, backend = served

    async def endless():
        while True:
            yield pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 1600, sample_rate=16000, channels=1))
            await asyncio.sleep(0.01)

    gen = client.generate(
        audio=endless(), image=_portrait_png(), options=GenerateOptions(resolution="256x256")
    )
    got_chunk = False
    async for response in gen:
        if response.HasField("chunk"):
            got_chunk = True
            break
    await gen.aclose()
    assert got_chunk
    for _ in range(100):
        if backend.avatars and backend.avatars[-1].closed:
            break
        await asyncio.sleep(0.05)
    assert backend.avatars[-1].closed


def test_malloc_arenas_are_limited_unless_the_operator_chose(monkeypatch):
    import platform

    from a2v_server.main import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is None  # glibc already read the operator's value
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    glibc = platform.libc_ver()[0] == "glibc"
    expected = max(2, os.cpu_count() or 2) if glibc else None
    assert limit_malloc_arenas() == expected
