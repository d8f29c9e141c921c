"""Sessions and stream slots on the real grpc.aio server (fake backend): a silent stream is
ended, a generation (not a call) holds its key's slot, readers of a cancelled session get a
status, several readers each get every chunk once in order (or OUT_OF_RANGE), and a client
that stops reading gets its own status.

Raw stubs throughout: the client library would send the config at once, resume by itself and
send Cancel(token) when its caller stops early, which are exactly what these tests avoid."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from fake_backend import FakeBackend
from media import portrait_png
from pki import KEY, OTHER_KEY

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server.settings import Settings
from a2v_server.transport import sessions

#: a client whose HTTP/2 window does not grow: the server's writes wait once ~64 KiB is unread
#: (with BDP probing the client's gRPC library takes megabytes without the caller reading)
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]
#: 320x240 grey frames come out at ~3 KiB per 200 ms chunk: a minute is ~1 MiB of output
SIZE = pb.Size(width=320, height=240)
DEFAULT_RETAINED = sessions.RETAINED_BYTES


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


# --- 3. slots are held by generations, not calls ------------------------------------------------
async def test_a_detached_generation_keeps_its_slot_until_it_ends(serve):
    hold = asyncio.Event()
    backend = FakeBackend(hold=hold)
    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=2, resume_detach_seconds=60)
    async with serve(settings, backend) as service, Stub(service.address) as client:
        # Two resumable generations with their whole input sent, then their calls cancelled
        # by the client (no Cancel(token)): they keep rendering, detached, for a Resume.
        calls = [client.generate(_requests(2, resumable=True)) for _ in range(2)]
        tokens = [(await _admitted(call)).accepted.resume_token for call in calls]
        await _until(lambda: len(backend.avatars) == 2 and all(a.got_last for a in backend.avatars))
        for call in calls:
            call.cancel()
        await asyncio.sleep(0.2)  # the server has seen the cancels (the old slot-per-call freed)
        code, message = await _refusal(client.generate(_requests(1, resumable=False)))
        assert code == "RESOURCE_EXHAUSTED" and "limit 2" in message
        assert not any(a.closed for a in backend.avatars)  # still rendering
        # A Resume attaches to its generation without a slot of its own.
        resumed = client.resume(tokens[0])
        assert (await _admitted(resumed)).HasField("accepted")
        # The generations end: their slots are free, and their output was complete.
        hold.set()
        responses, code, _ = await _read_all(resumed)
        assert code == "OK" and responses[-1].HasField("summary")
        assert _sequences(responses) == list(range(responses[-1].summary.chunks))
        await _until(lambda: all(a.closed for a in backend.avatars))
        responses, code, _ = await _read_all(client.generate(_requests(1, resumable=False)))
        assert code == "OK"


async def test_resume_needs_no_slot_but_a_session_takes_two_readers(serve, keys_file):
    hold = asyncio.Event()
    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=1, api_keys_file=keys_file)
    async with (
        serve(settings, FakeBackend(hold=hold)) as service,
        Stub(service.address, KEY) as client,
        Stub(service.address, OTHER_KEY) as other,
    ):
        generate = client.generate(_requests(2, resumable=True))
        token = (await _admitted(generate)).accepted.resume_token
        # the key's one slot is taken by the generation
        code, _ = await _refusal(client.generate(_requests(1, resumable=False)))
        assert code == "RESOURCE_EXHAUSTED"
        # a second reader needs no slot
        second = client.resume(token)
        assert (await _admitted(second)).accepted.resume_token == token
        # a third is refused, saying why
        code, message = await _refusal(client.resume(token))
        assert code == "RESOURCE_EXHAUSTED" and "already has 2 open readers" in message
        # another key cannot read (or cancel) this key's generation
        code, message = await _refusal(other.resume(token))
        assert code == "NOT_FOUND" and "resume token" in message
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await other.cancel(token)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        # once a reader leaves, another may come
        second.cancel()
        for _ in range(50):  # the server notices the cancelled call within moments
            third = client.resume(token)
            try:
                await _admitted(third)
                break
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("a reader's place was not freed")
        hold.set()
        for call in (generate, third):
            responses, code, _ = await _read_all(call)
            assert code == "OK" and responses[-1].HasField("summary")


# --- 4. a cancelled session ends its readers with a status ----------------------------------------
async def test_cancel_ends_every_reader_with_cancelled(serve, caplog):
    caplog.set_level(logging.INFO)
    hold = asyncio.Event()
    backend = FakeBackend(hold=hold)
    async with serve(Settings(listen="127.0.0.1:0"), backend) as service:
        async with Stub(service.address) as client:
            generate = client.generate(_requests(2, resumable=True))
            token = (await _admitted(generate)).accepted.resume_token
            resumed = client.resume(token)
            await _admitted(resumed)
            await client.cancel(token)
            for call in (generate, resumed):
                _, code, message = await _read_all(call)
                assert code == "CANCELLED"
                assert "cancelled by Cancel(resume_token)" in message
            # a later Resume of the cancelled session says so too
            _, code, message = await _read_all(client.resume(token))
            assert code == "CANCELLED" and "Cancel(resume_token)" in message
            await _until(lambda: backend.avatars[-1].closed)
        gc.collect()
        await asyncio.sleep(0.1)
    assert "Task was destroyed" not in caplog.text


async def test_a_generation_stopped_for_want_of_a_reader_says_so_to_a_late_resume(serve):
    hold = asyncio.Event()
    backend = FakeBackend(hold=hold)
    settings = Settings(listen="127.0.0.1:0", resume_detach_seconds=0.3)
    async with serve(settings, backend) as service, Stub(service.address) as client:
        generate = client.generate(_requests(2, resumable=True))
        token = (await _admitted(generate)).accepted.resume_token
        await _until(lambda: backend.avatars and backend.avatars[-1].got_last)
        generate.cancel()
        await _until(lambda: backend.avatars[-1].closed)  # the sweeper stopped it
        responses, code, message = await _read_all(client.resume(token))
        assert [r.WhichOneof("message") for r in responses] == ["accepted"]
        assert code == "OUT_OF_RANGE"
        assert "nobody read this generation for 0.3 s" in message


# --- 5. several readers: each its own position ----------------------------------------------------
@pytest.mark.parametrize("retained", [DEFAULT_RETAINED, 16 << 10])
async def test_two_readers_each_get_every_chunk_once_or_out_of_range(serve, monkeypatch, retained):
    """The Generate call stops reading after its first response while a Resume of the same
    token reads everything; then the Generate call reads on. With room enough to keep the
    output both get every chunk once, in order; with a small window the slow one gets
    OUT_OF_RANGE, never a stream with chunks missing."""
    monkeypatch.setattr(sessions, "RETAINED_BYTES", retained)
    async with (
        serve(Settings(listen="127.0.0.1:0")) as service,
        Stub(service.address, options=SMALL_WINDOW) as slow,
        Stub(service.address) as fast,
    ):
        generate = slow.generate(_requests(40, resumable=True))
        first = await _admitted(generate)
        fast_responses, code, _ = await _read_all(fast.resume(first.accepted.resume_token))
        assert code == "OK"
        chunks = fast_responses[-1].summary.chunks
        assert _sequences(fast_responses) == list(range(chunks))
        slow_responses, code, message = await _read_all(generate)
        sequences = _sequences(slow_responses)
        assert sequences == list(range(len(sequences)))  # no gap, no repeat
        if retained == DEFAULT_RETAINED:
            assert code == "OK" and len(sequences) == chunks
        else:
            assert code == "OUT_OF_RANGE", message
            assert "read too slowly" in message and len(sequences) < chunks


# --- 7. a client that does not read its responses -------------------------------------------------
@pytest.fixture
def small_buffer(monkeypatch):
    """Sessions hold 32 KiB of unread output before the generation waits."""
    monkeypatch.setattr(sessions, "UNSENT_BYTES", 32 << 10)


async def test_a_client_that_stops_reading_gets_its_own_status(serve, small_buffer, caplog):
    caplog.set_level(logging.INFO)
    backend = FakeBackend()
    settings = Settings(listen="127.0.0.1:0", idle_timeout_seconds=0.5, max_streams_per_key=1)
    async with (
        serve(settings, backend) as service,
        Stub(service.address, options=SMALL_WINDOW) as client,
    ):
        generate = client.generate(_requests(60, resumable=False))
        await _admitted(generate)
        # The server stops the generation and frees its slot while the call stays unread.
        await _until(lambda: backend.avatars and backend.avatars[0].closed)
        responses, code, _ = await _read_all(client.generate(_requests(1, resumable=False)))
        assert code == "OK"
        # Reading again: what was already on its way, then the reason.
        responses, code, message = await _read_all(generate)
        sequences = _sequences(responses)
        assert sequences == list(range(len(sequences)))
        assert code == "DEADLINE_EXCEEDED"
        assert "stopped reading its responses" in message and "read the stream as it arrives" in (
            message
        )
    assert "slower than real time" not in caplog.text


async def test_a_stalled_reader_of_a_resumable_generation_leaves_it_detached(
    serve, small_buffer, caplog
):
    caplog.set_level(logging.INFO)
    hold = asyncio.Event()
    backend = FakeBackend(hold=hold)
    settings = Settings(listen="127.0.0.1:0", idle_timeout_seconds=0.5)
    async with (
        serve(settings, backend) as service,
        Stub(service.address, options=SMALL_WINDOW) as client,
    ):
        generate = client.generate(_requests(20, resumable=True))
        token = (await _admitted(generate)).accepted.resume_token
        # The whole input is in (a generation whose input still comes from the stalled call
        # is stopped: the call's end would cut it off); then it renders into an unread call.
        await _until(lambda: backend.avatars and backend.avatars[0].got_last)
        hold.set()
        await _until(lambda: "a reader took nothing for 0.5 s" in caplog.text)
        responses, code, message = await _read_all(generate)
        sequences = _sequences(responses)
        assert sequences == list(range(len(sequences)))
        assert code == "DEADLINE_EXCEEDED" and "stopped reading" in message
        # The generation waited, detached, for a Resume: it continues after the last chunk.
        rest, code, _ = await _read_all(client.resume(token, sequences[-1]))
        assert code == "OK" and rest[-1].HasField("summary")
        assert sequences + _sequences(rest) == list(range(rest[-1].summary.chunks))
