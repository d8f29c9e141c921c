"""Input pacing limits, with the fake backend: too many messages per second, and a live
source that cannot keep up with real time."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from media import portrait_png

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, bytes_audio
from a2v_server.settings import Settings


async def _run(client, audio) -> list:
    return [
        r
        async for r in client.generate(
            audio=audio, image=portrait_png(), options=GenerateOptions(resolution="256x256")
        )
    ]


def _pcm(samples: int) -> pb.AudioChunk:
    return pb.AudioChunk(
        pcm=pb.PcmChunk(data=np.zeros(samples, "<i2").tobytes(), sample_rate=16000, channels=1)
    )


async def test_too_many_messages_per_second_is_resource_exhausted(serve):
    settings = Settings(listen="127.0.0.1:0", max_messages_per_second=50)
    async with serve(settings) as service, AsyncClient(service.address, timeout=60) as client:
        with pytest.raises(A2VClientError) as info:
            await _run(client, [_pcm(16) for _ in range(400)])  # 1 ms each, all at once
        assert info.value.code == "RESOURCE_EXHAUSTED"
        assert "larger messages" in info.value.message
        # within the rate, the same audio in larger pieces is fine
        responses = await _run(client, [_pcm(1600) for _ in range(4)])
        assert responses[-1].HasField("summary")


async def test_slow_live_source_is_deadline_exceeded(serve):
    settings = Settings(listen="127.0.0.1:0", max_audio_lag_seconds=0.5)

    async def half_speed():
        for _ in range(40):
            yield _pcm(800)  # 50 ms of audio ...
            await asyncio.sleep(0.1)  # ... every 100 ms

    async with serve(settings) as service, AsyncClient(service.address, timeout=60) as client:
        with pytest.raises(A2VClientError) as info:
            await _run(client, half_speed())
        assert info.value.code == "DEADLINE_EXCEEDED"
        assert "slower than real time" in info.value.message


async def test_a_fast_upload_in_large_pieces_is_not_a_message_flood(serve):
    """File pieces of 64 KiB and more are bounded by the byte limits, not the message rate: a
    fast network (or loopback, or a server reading buffered messages in a burst) delivers a big
    file's pieces faster than the rate, and such an upload was refused as "more than N messages
    per second" (a 156 MB ProRes MOV in the CLI's 256 KiB pieces, over loopback)."""
    import io
    import wave

    settings = Settings(listen="127.0.0.1:0", max_messages_per_second=20)
    data = io.BytesIO()
    with wave.open(data, "wb") as w:  # 12 s of 48 kHz stereo: 36 pieces of 64 KiB
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(48000)
        w.writeframes(np.zeros((48000 * 12, 2), "<i2").tobytes())
    async with serve(settings) as service, AsyncClient(service.address, timeout=60) as client:
        responses = await _run(client, bytes_audio(data.getvalue(), 64 * 1024))
        assert responses[-1].HasField("summary")
        assert responses[-1].summary.duration_seconds == pytest.approx(12.0, abs=0.1)
