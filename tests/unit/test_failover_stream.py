"""FailoverStream (inference/pool.py): when the Triton of a sequence dies or stalls, the
sequence is reopened on another healthy endpoint at the first frame not yet received, with all
of the audio again and the video frames still in flight; the caller's batches go on in order.
Fake model streams stand in for Triton here; tests/integration/test_failover.py kills a real
one."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from a2v_server.errors import Unavailable
from a2v_server.inference import pool as pool_mod
from a2v_server.inference.backend import FrameBatch
from a2v_server.inference.pool import FailoverStream, TritonPool


class FakeStream:
    """Frames 0, 1, ... as the audio asks for them (one per 640 samples at 25 fps), from
    ``start``; ``fail_after`` frames: then Unavailable (or, with ``stall``, silence)."""

    def __init__(self, start: int = 0, fail_after: int | None = None, stall: bool = False):
        self.start = start
        self.sent: list[dict] = []
        self.samples = 0
        self.frames_in = 0
        self.fail_after = fail_after
        self.stall = stall
        self.closed = False
        self.takes_i420 = False
        self._changed = asyncio.Event()

    async def send_audio(self, samples, *, last=False, frames=None, source_index=None, origin=None):
        if self.closed:
            return
        self.sent.append(
            {"samples": np.array(samples), "last": last, "frames": frames, "index": source_index}
        )
        self.samples += len(samples)
        self._changed.set()

    def owed(self) -> bool:
        return True

    async def batches(self):
        next_frame = self.start
        while True:
            if self.fail_after is not None and next_frame - self.start >= self.fail_after:
                if self.stall:
                    await asyncio.sleep(3600)
                raise Unavailable("rendering: lost the inference server (UNAVAILABLE)")
            if next_frame < self.samples // 640:
                frame = np.full((1, 2, 2, 3), next_frame, np.uint8)
                yield FrameBatch(next_frame, frame, np.zeros(1))
                next_frame += 1
                continue
            if self.sent and self.sent[-1]["last"]:
                return
            self._changed.clear()
            await self._changed.wait()

    async def aclose(self) -> None:
        self.closed = True


def _pool() -> TritonPool:
    pool = TritonPool("127.0.0.1:1,127.0.0.1:2")
    pool._checked = True
    for endpoint in pool.endpoints:
        endpoint.healthy = True
    return pool


async def _run(stream: FailoverStream, audio: list[np.ndarray], **send) -> list[int]:
    async def feed():
        for piece in audio:
            await stream.send_audio(piece, **send)
        await stream.send_audio(np.zeros(0, np.float32), last=True)

    feeding = asyncio.create_task(feed())
    got = []
    async for batch in stream.batches():
        got.append(batch.first_index)
    await feeding
    return got


async def test_a_dead_triton_is_replaced_at_the_next_frame():
    pool = _pool()
    first, second = pool.endpoints
    opened: list[tuple[str, int]] = []
    reopened = FakeStream(start=3)

    async def open_on(endpoint, start):
        opened.append((endpoint.url, start))
        reopened.start = start
        return reopened

    stream = FailoverStream(pool, first, FakeStream(fail_after=3), open_on)
    audio = [np.full(640, i, np.float32) for i in range(8)]
    got = await _run(stream, audio)
    assert got == list(range(8))  # every frame once, in order
    assert opened == [(second.url, 3)]
    replayed = np.concatenate([m["samples"] for m in reopened.sent])
    assert np.array_equal(replayed, np.concatenate(audio))  # all of the audio, once, in order
    assert reopened.sent[-1]["last"]
    assert (first.open, second.open, first.healthy) == (0, 1, False)
    await stream.aclose()
    assert second.open == 0


async def test_a_silent_triton_that_owes_frames_is_replaced(monkeypatch):
    monkeypatch.setattr(pool_mod, "STALL_SECONDS", 0.2)
    monkeypatch.setattr(pool_mod, "STALL_CHECK_SECONDS", 0.05)
    pool = _pool()

    async def open_on(endpoint, start):
        return FakeStream(start=start)

    stream = FailoverStream(pool, pool.endpoints[0], FakeStream(fail_after=2, stall=True), open_on)
    got = await _run(stream, [np.zeros(640, np.float32)] * 5)
    assert got == list(range(5)) and stream.failovers == 1


async def test_without_another_triton_the_error_stands():
    pool = _pool()
    pool.endpoints[1].healthy = False

    async def open_on(endpoint, start):
        raise AssertionError("nowhere to open")

    stream = FailoverStream(pool, pool.endpoints[0], FakeStream(fail_after=1), open_on)
    with pytest.raises(Unavailable, match="lost the inference server"):
        await _run(stream, [np.zeros(640, np.float32)] * 3)


async def test_lipsync_frames_still_in_flight_are_sent_again():
    pool = _pool()
    reopened = FakeStream()

    async def open_on(endpoint, start):
        reopened.start = start
        return reopened

    stream = FailoverStream(pool, pool.endpoints[0], FakeStream(fail_after=2), open_on)
    for k in range(4):
        await stream.send_audio(
            np.zeros(640, np.float32),
            frames=np.full((1, 2, 2, 3), k, np.uint8),
            source_index=np.array([10 + k]),
        )
    await stream.send_audio(np.zeros(0, np.float32), last=True)
    got = [b.first_index async for b in stream.batches()]
    assert got == [0, 1, 2, 3]
    again = [int(m["index"][0]) for m in reopened.sent if m["frames"] is not None]
    assert again == [12, 13]  # frames 2 and 3: not answered before the failure


async def test_a_triton_whose_lipsync_takes_the_other_frame_format_is_not_used():
    """A rolling upgrade: the sequence ran on a model that takes I420, the only other Triton's
    takes RGB. Its frames in flight (and the crops the encoder pastes into) are I420, so the
    failover does not mix the two: the error stands, the stream opened there is closed."""
    pool = _pool()
    other = FakeStream()

    async def open_on(endpoint, start):
        return other  # takes RGB

    first = FakeStream(fail_after=2)
    first.takes_i420 = True
    stream = FailoverStream(pool, pool.endpoints[0], first, open_on)
    with pytest.raises(Unavailable, match="lost the inference server"):
        await _run(stream, [np.zeros(640, np.float32)] * 4)
    assert other.closed and other.sent == []


async def test_a_stream_that_fails_after_the_calls_deadline_leaves_its_triton_healthy():
    """Triton ends a sequence's requests once the call's deadline has passed; that failure is
    the caller's deadline, not the endpoint's health: DEADLINE_EXCEEDED, no failover, and the
    endpoint still takes new work (marked unhealthy, every other call would be refused until
    the next health check)."""
    import time

    from a2v_server.errors import DeadlineExceeded
    from a2v_server.inference.backend import call_deadline

    pool = _pool()
    opened = []

    async def open_on(endpoint, start):
        opened.append(endpoint)
        return FakeStream(start=start)

    token = call_deadline.set(time.monotonic() - 0.01)
    try:
        stream = FailoverStream(pool, pool.endpoints[0], FakeStream(fail_after=1), open_on)
        with pytest.raises(DeadlineExceeded):
            await _run(stream, [np.zeros(640, np.float32)] * 3)
    finally:
        call_deadline.reset(token)
    assert opened == [] and pool.endpoints[0].healthy


async def test_a_unary_call_that_fails_after_the_calls_deadline_leaves_its_triton_healthy():
    import time

    from a2v_server.errors import DeadlineExceeded
    from a2v_server.inference.backend import call_deadline

    pool = _pool()

    async def call(backend):
        raise Unavailable("face analysis: the inference server did not answer (Cancelled)")

    token = call_deadline.set(time.monotonic() - 0.01)
    try:
        with pytest.raises(DeadlineExceeded):
            await pool._unary("face analysis", call)
    finally:
        call_deadline.reset(token)
    assert all(e.healthy for e in pool.endpoints)
    with pytest.raises(Unavailable):  # within its deadline, the same failure is the endpoint's
        await pool._unary("face analysis", call)
    assert not any(e.healthy for e in pool.endpoints)


async def test_a_reader_cancelled_while_it_waits_closes_the_stream_cleanly():
    """The generation is cancelled (its caller went) while the stream waits for frames: the
    cancellation goes through as such, and the model stream's batches are closed (not left
    running: closing a running generator raised RuntimeError, logged as a crash)."""
    pool = _pool()
    inner = FakeStream(fail_after=1, stall=True)  # sends a frame, then nothing

    async def open_on(endpoint, start):
        raise AssertionError("no failover")

    stream = FailoverStream(pool, pool.endpoints[0], inner, open_on)
    await stream.send_audio(np.zeros(640 * 3, np.float32))
    got = []

    async def read():
        async for batch in stream.batches():
            got.append(batch.first_index)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert got == [0]
    await stream.aclose()
