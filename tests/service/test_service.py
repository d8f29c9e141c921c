"""Service tier: the real grpc.aio server in-process, a fake in place of Triton."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
import pytest
from media import portrait_png, tone_wav

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, GenerateOptions, bytes_audio, pcm_audio


async def _collect(client, audio, **options):
    return [
        r
        async for r in client.generate(
            audio=audio, image=portrait_png(), options=GenerateOptions(**options)
        )
    ]


async def test_stream_decodes_to_the_right_video(client):
    responses = await _collect(
        client, bytes_audio(tone_wav(2.0), 4096), resolution="320x240", fps=30
    )
    data = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 60 == responses[-1].summary.frames
    assert frames[0].shape == (240, 320, 3)
    assert np.abs(frames[10].astype(int) - [40, 120, 200]).mean() < 6  # colours survive
    assert responses[-1].summary.timings.first_chunk_seconds > 0


async def test_spans_cover_decode_inference_encode(client, spans):
    spans.clear()
    await _collect(client, bytes_audio(tone_wav(0.5)), resolution="256x256")
    names = {s.name for s in spans.get_finished_spans()}
    assert {
        "a2v.generate",
        "decode.image",
        "decode.audio",
        "inference.face_analysis",
        "inference.render",
        "encode",
    } <= names


async def test_pcm_input(client):
    pcm = (np.zeros(8000 * 2, "<i2")).tobytes()  # 1 s stereo 8 kHz silence
    pieces = [pcm[i : i + 999] for i in range(0, len(pcm), 999)]  # odd sizes split samples
    responses = await _collect(client, pcm_audio(pieces, 8000, 2), resolution="256x256")
    assert responses[-1].summary.frames == 25


async def test_no_face_is_invalid_argument(client, service):
    service.backend.faces = False
    with pytest.raises(A2VClientError) as info:
        await _collect(client, bytes_audio(tone_wav(0.5)))
    assert info.value.code == "INVALID_ARGUMENT" and "no face" in info.value.message
    assert info.value.violations == [("image", info.value.message)]


async def test_client_cancel_closes_the_model_stream(client, service):
    backend = service.backend

    async def endless():
        while True:
            yield pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 1600, sample_rate=16000, channels=1))
            await asyncio.sleep(0.01)

    gen = client.generate(
        audio=endless(), image=portrait_png(), options=GenerateOptions(resolution="256x256")
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
