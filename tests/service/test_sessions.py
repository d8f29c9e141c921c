"""Sessions and stream slots on the real grpc.aio server (fake backend): a stream that never
sends its config is ended within the idle timeout and frees its slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from media import portrait_png

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server.settings import Settings

#: a client whose HTTP/2 window does not grow: the server's writes wait once ~64 KiB is unread
#: (with BDP probing the client's gRPC library takes megabytes without the caller reading)
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]
#: 320x240 grey frames come out at ~3 KiB per 200 ms chunk: a minute is ~1 MiB of output
SIZE = pb.Size(width=320, height=240)


def _requests(seconds: float, *, resumable: bool, end: bool = True) -> list[pb.GenerateRequest]:
    """Config, portrait, ``seconds`` of PCM noise in 1 s messages, end."""
    import numpy as np

    noise = np.random.default_rng(0).normal(0, 3000, 16000).astype("<i2").tobytes()
    config = pb.GenerateConfig(
        resumable=resumable, output=pb.OutputOptions(resolution=pb.Resolution(size=SIZE))
    )
    messages = [
        pb.GenerateRequest(config=config),
        pb.GenerateRequest(image=pb.ImageInput(data=portrait_png())),
    ]
    audio = pb.AudioChunk(pcm=pb.PcmChunk(data=noise, sample_rate=16000, channels=1))
    messages += [pb.GenerateRequest(audio=audio) for _ in range(round(seconds))]
    if end:
        messages.append(pb.GenerateRequest(end=pb.EndOfInput()))
    return messages


def _metadata(key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),) if key else ()


class Stub:
    """A raw AudioToVideo stub on its own channel."""

    def __init__(self, address: str, key: str | None = None, options=()) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=list(options))
        self.stub = pb_grpc.AudioToVideoStub(self.channel)
        self.metadata = _metadata(key)

    def generate(self, requests) -> grpc.aio.StreamStreamCall:
        """Generate; a list of requests is written once the server has admitted the stream
        (its headers came), as the client library does: a write that races a refusal turns
        the status into INTERNAL in grpc.aio clients (grpc/grpc#36066)."""
        if not isinstance(requests, list):
            return self.stub.Generate(requests, metadata=self.metadata)

        async def admitted() -> AsyncIterator[pb.GenerateRequest]:
            await call.initial_metadata()
            for request in requests:
                if call.done():
                    return
                yield request

        call = self.stub.Generate(admitted(), metadata=self.metadata)
        return call

    def resume(self, token: str, last: int | None = None) -> grpc.aio.UnaryStreamCall:
        request = pb.ResumeRequest(resume_token=token)
        if last is not None:
            request.last_sequence = last
        return self.stub.Resume(request, metadata=self.metadata)

    async def cancel(self, token: str) -> None:
        await self.stub.Cancel(pb.CancelRequest(resume_token=token), metadata=self.metadata)

    async def __aenter__(self) -> Stub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()


async def _read_all(call, pause: float = 0.0) -> tuple[list[pb.GenerateResponse], str, str]:
    """Every response of ``call`` and its status (code name, message), within 30 s."""
    responses: list[pb.GenerateResponse] = []
    async with asyncio.timeout(30):
        try:
            async for response in call:
                responses.append(response)
                if pause:
                    await asyncio.sleep(pause)
        except grpc.aio.AioRpcError:
            pass
        code = await call.code()
        return responses, code.name, await call.details() or ""


def _sequences(responses: list[pb.GenerateResponse]) -> list[int]:
    return [r.chunk.sequence_number for r in responses if r.HasField("chunk")]


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


async def _admitted(call) -> pb.GenerateResponse:
    """The first response of a call (Accepted): raises the call's error if it was refused."""
    async with asyncio.timeout(20):
        return await anext(aiter(call))


async def _refusal(call) -> tuple[str, str]:
    """The status of a call that must fail before its first response."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _admitted(call)
    return info.value.code().name, info.value.details() or ""


# --- 2. a stream that never sends its config ----------------------------------------------------
async def test_a_stream_without_a_config_is_ended_and_frees_its_slot(serve):
    settings = Settings(listen="127.0.0.1:0", idle_timeout_seconds=0.5, max_streams_per_key=1)
    forever = asyncio.Event()

    async def silent() -> AsyncIterator[pb.GenerateRequest]:
        await forever.wait()  # until the test is done with it
        return
        yield  # an async generator that yields nothing

    async with serve(settings) as service, Stub(service.address) as client:
        call = client.generate(silent())
        responses, code, message = await _read_all(call)
        forever.set()
        assert (responses, code) == ([], "DEADLINE_EXCEEDED")
        assert "no config message within 0.5 s" in message and "send the config first" in message
        # its slot is free again (the limit is 1)
        responses, code, _ = await _read_all(client.generate(_requests(1, resumable=False)))
        assert code == "OK" and responses[-1].HasField("summary")
