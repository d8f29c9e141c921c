"""Hostile use of sessions and stream slots against the real server and Triton: silent streams,
resumable calls cancelled to dodge the stream limit, Cancel(token) while a call reads, and a
second reader of one session.

A stack of its own (the limits differ from the corpus's): 2 streams per key, a 3 s idle
timeout, and detached generations kept for a minute, so only a generation's end frees a slot.
Raw stubs throughout: the client library would send the config at once and send
Cancel(token) when its caller stops early, which are what these tests avoid."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from loopback import loopback_stack
from media import PORTRAIT, SPEECH, tone_wav

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

LIMIT = 2
IDLE_TIMEOUT = 3.0
#: a client whose HTTP/2 window does not grow: the server's writes wait once ~64 KiB is unread
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {
        "A2V_MAX_STREAMS_PER_KEY": str(LIMIT),
        "A2V_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "A2V_RESUME_DETACH_SECONDS": "60",
    }
    with loopback_stack(tmp_path_factory, "sessions-stack-logs", env) as running:
        yield running


def _requests(*, resumable: bool, tone_seconds: float = 0) -> list[pb.GenerateRequest]:
    """The sample speech (or a WAV tone of ``tone_seconds``: a longer render) onto the sample
    portrait at 256x256, complete with its end. Encoded audio: the server takes the whole
    input at once (PCM it reads as it renders), so a call cut after its first chunk leaves a
    complete generation behind."""
    size = pb.Size(width=256, height=256)
    config = pb.GenerateConfig(
        resumable=resumable, output=pb.OutputOptions(resolution=pb.Resolution(size=size))
    )
    data = tone_wav(tone_seconds) if tone_seconds else SPEECH.read_bytes()
    audio = [
        pb.GenerateRequest(audio=pb.AudioChunk(encoded=data[i : i + 65536]))
        for i in range(0, len(data), 65536)
    ]
    return [
        pb.GenerateRequest(config=config),
        pb.GenerateRequest(image=pb.ImageInput(data=PORTRAIT.read_bytes())),
        *audio,
        pb.GenerateRequest(end=pb.EndOfInput()),
    ]


class Stub:
    def __init__(self, address: str, options=()) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=list(options))
        self.stub = pb_grpc.AudioToVideoStub(self.channel)

    def generate(self, requests) -> grpc.aio.StreamStreamCall:
        """Generate; a list of requests is written once the server has admitted the stream,
        as the client library does (a write racing a refusal turns its status into INTERNAL
        in grpc.aio clients, grpc/grpc#36066)."""
        if not isinstance(requests, list):
            return self.stub.Generate(requests)

        async def admitted() -> AsyncIterator[pb.GenerateRequest]:
            await call.initial_metadata()
            for request in requests:
                if call.done():
                    return
                yield request
            self.sent.set()  # the last one is written

        self.sent = asyncio.Event()
        call = self.stub.Generate(admitted())
        return call

    def resume(self, token: str) -> grpc.aio.UnaryStreamCall:
        return self.stub.Resume(pb.ResumeRequest(resume_token=token))

    async def __aenter__(self) -> Stub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()


async def _first_chunk(call) -> None:
    async with asyncio.timeout(60):
        async for response in call:
            if response.HasField("chunk"):
                return
    raise AssertionError("the call ended before its first chunk")


async def _read_all(call) -> tuple[list[pb.GenerateResponse], str, str]:
    """Every response and the status (code name, message), within 120 s."""
    responses: list[pb.GenerateResponse] = []
    async with asyncio.timeout(120):
        try:
            async for response in call:
                responses.append(response)
        except grpc.aio.AioRpcError:
            pass
        return responses, (await call.code()).name, await call.details() or ""


async def _first(call) -> pb.GenerateResponse:
    async with asyncio.timeout(60):
        return await anext(aiter(call))


def _complete(responses: list[pb.GenerateResponse]) -> bool:
    """Ends with a summary, and every chunk arrived once, in order."""
    if not responses or not responses[-1].HasField("summary"):
        return False
    sequences = [r.chunk.sequence_number for r in responses if r.HasField("chunk")]
    return sequences == list(range(responses[-1].summary.chunks))


async def test_a_silent_stream_is_ended_and_does_not_hold_a_slot(stack):
    forever = asyncio.Event()

    async def silent() -> AsyncIterator[pb.GenerateRequest]:
        await forever.wait()  # until the test is done with it
        return
        yield

    async with Stub(stack.address) as client:
        calls = [client.generate(silent()) for _ in range(LIMIT + 2)]
        results = await asyncio.gather(*map(_read_all, calls))
        forever.set()
        # Each admitted one ends with the reason; the others were refused while they held
        # the slots (for the idle timeout, not for as long as they stay open).
        codes = sorted(code for _, code, _ in results)
        assert codes == ["DEADLINE_EXCEEDED"] * LIMIT + ["RESOURCE_EXHAUSTED"] * 2
        for _, code, message in results:
            if code == "DEADLINE_EXCEEDED":
                assert "send the config first" in message
        responses, code, _ = await _read_all(client.generate(_requests(resumable=False)))
        assert code == "OK" and _complete(responses)


async def test_cancelled_resumable_calls_keep_their_slots_until_their_generations_end(stack):
    async with Stub(stack.address) as client:
        # LIMIT resumable generations of 30 s of audio, their whole input sent, their calls
        # cancelled by the client after the first chunk, without Cancel(token): the
        # generations keep rendering, detached, for seconds.
        calls, tokens = [], []
        for _ in range(LIMIT):
            calls.append(client.generate(_requests(resumable=True, tone_seconds=30)))
            tokens.append((await _first(calls[-1])).accepted.resume_token)
            await client.sent.wait()
        for call in calls:
            await _first_chunk(call)
            call.cancel()
        # A normal request is refused while they render...
        responses, code, message = await _read_all(client.generate(_requests(resumable=False)))
        assert code == "RESOURCE_EXHAUSTED" and f"limit {LIMIT}" in message
        # ...the detached generations go on to their end (a Resume needs no slot)...
        for token in tokens:
            responses, code, _ = await _read_all(client.resume(token))
            assert code == "OK" and _complete(responses)
        # ...and then it is admitted.
        for _ in range(100):
            responses, code, _ = await _read_all(client.generate(_requests(resumable=False)))
            if code != "RESOURCE_EXHAUSTED":
                break
            await asyncio.sleep(0.05)  # the slots free as the generations end, not later
        assert code == "OK" and _complete(responses)


async def test_cancel_ends_the_reading_call_with_cancelled(stack):
    async with Stub(stack.address) as client:
        generate = client.generate(_requests(resumable=True))
        token = (await _first(generate)).accepted.resume_token
        await client.stub.Cancel(pb.CancelRequest(resume_token=token))
        _, code, message = await _read_all(generate)
        assert code == "CANCELLED" and "Cancel(resume_token)" in message


async def test_a_slow_reader_and_a_fast_one_each_get_every_chunk(stack):
    """The Generate call reads slowly (but keeps reading: a reader that stops is dropped after
    the idle timeout), a Resume of it reads at once: each gets every chunk, in order."""

    async def slowly(call) -> tuple[list[pb.GenerateResponse], str, str]:
        responses = []
        async with asyncio.timeout(120):
            try:
                async for response in call:
                    responses.append(response)
                    await asyncio.sleep(0.1)
            except grpc.aio.AioRpcError:
                pass
            return responses, (await call.code()).name, await call.details() or ""

    async with Stub(stack.address, SMALL_WINDOW) as slow, Stub(stack.address) as fast:
        generate = slow.generate(_requests(resumable=True))
        token = (await _first(generate)).accepted.resume_token
        (slow_responses, slow_code, message), (fast_responses, fast_code, _) = await asyncio.gather(
            slowly(generate), _read_all(fast.resume(token))
        )
        assert fast_code == "OK" and _complete(fast_responses)
        # every chunk once and in order, or OUT_OF_RANGE: never OK with a gap
        sequences = [r.chunk.sequence_number for r in slow_responses if r.HasField("chunk")]
        assert sequences == list(range(len(sequences)))
        assert slow_code == "OK", message
        assert _complete(slow_responses)
