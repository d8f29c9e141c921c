"""``AsyncClient`` against the real stack: the model catalogue, health and one generation,
as the blocking ``Client`` sees them in test_errors_and_ops.py and test_generate.py."""

from __future__ import annotations

import pytest
from media import PORTRAIT, duration

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, file_audio


async def test_async_client_models_and_health(stack, client):
    async with AsyncClient(stack.address, timeout=60) as aclient:
        models = await aclient.list_models()
        assert [m.name for m in models] == [m.name for m in client.list_models()]
        model = await aclient.get_model("talking_avatar")
        assert model == client.get_model("talking_avatar")
        assert model.name == "talking_avatar" and model.ready
        with pytest.raises(A2VClientError) as info:
            await aclient.get_model("missing")
        assert info.value.code == "NOT_FOUND"
        assert await aclient.health() == "SERVING"
        assert await aclient.health("a2v.v1.AudioToVideo") == "SERVING"


async def test_async_client_generates(stack, short_speech):
    async with AsyncClient(stack.address, timeout=180) as aclient:
        responses = [
            r
            async for r in aclient.generate(
                audio=file_audio(short_speech),
                image=PORTRAIT,
                options=GenerateOptions(resolution="320x240"),
            )
        ]
    kinds = [r.WhichOneof("message") for r in responses]
    assert kinds[0] == "accepted" and kinds[-1] == "summary"
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
    assert chunks[0].kind == pb.CHUNK_KIND_INIT
    assert responses[0].accepted.width == 320 and responses[0].accepted.height == 240
    assert responses[-1].summary.frames == round(duration(short_speech) * 25)
