"""TritonSequenceStream against a stand-in tritonclient: what the Triton stream delivers,
in whatever order, reaches the pipeline as consecutive frames (or a clear error)."""

from __future__ import annotations

import asyncio
import types

import numpy as np
import pytest

from a2v_server.errors import A2VError
from a2v_server.inference.sequence import TritonSequenceStream, _batch


class _Result:
    def __init__(self, first: int, n: int, request_id: str = "") -> None:
        self._id = request_id
        self._tensors = {
            "FRAMES": np.full((n, 2, 2, 3), first, np.uint8),
            "FIRST_FRAME": np.array([first], np.int64),
            "MOUTH_OPEN": np.zeros(n, np.float32),
        }

    def as_numpy(self, name: str):
        return self._tensors.get(name)

    def get_response(self):
        return types.SimpleNamespace(id=self._id)


class _Client:
    """Answers a whole sequence with responses in the given (first frame, count) order."""

    def __init__(self, order: list[tuple[int, int]]) -> None:
        self.order = order

    def stream_infer(self, requests, **_):
        async def responses():
            async for _ in requests:  # the sequence's requests, up to the last one
                pass
            for first, n in self.order:
                yield _Result(first, n), None

        return responses()


async def _frames(order: list[tuple[int, int]]) -> list[int]:
    stream = TritonSequenceStream(_Client(order), "m", {"FPS": np.array([25.0], np.float32)})
    await stream.send_audio(np.zeros(6400, np.float32), last=True)
    return [int(b.first_index) async for b in stream.batches()]


async def test_responses_that_overtake_others_are_put_back_in_order():
    # Triton delivered the first batch of a request before the last one of the request before
    assert await _frames([(0, 3), (5, 2), (3, 2), (7, 1)]) == [0, 3, 5, 7]
    assert await _frames([(6, 2), (3, 3), (0, 3)]) == [0, 3, 6]


async def test_a_missing_batch_is_an_error_not_a_short_video():
    with pytest.raises(A2VError, match="skipped frames"):
        await _frames([(0, 3), (5, 2)])


async def test_a_repeated_batch_is_an_error():
    with pytest.raises(A2VError, match="twice"):
        await _frames([(0, 3), (0, 3)])


async def test_requests_without_frames_are_not_remembered_forever():
    """Most live requests (20-100 ms of audio) complete no frame and get no response at all;
    the per-request send times kept for the latency metric must not pile up over a stream."""

    class Client:
        def stream_infer(self, requests, **_):
            async def responses():
                ids = [r["request_id"] async for r in requests]
                yield _Result(0, 2, ids[1]), None  # requests 0, 2, 3 make no frames
                yield _Result(2, 2, ids[4]), None

            return responses()

    stream = TritonSequenceStream(Client(), "m", {"FPS": np.array([25.0], np.float32)})
    for last in (False, False, False, False, True):
        await stream.send_audio(np.zeros(1280, np.float32), last=last)
    assert [b.first_index async for b in stream.batches()] == [0, 2]
    assert len(stream._sent_at) == 0


def test_mouth_source_is_read_when_the_model_sends_it_and_none_when_not():
    result = _Result(0, 3)
    assert _batch(result).mouth_source is None  # an older lipsync, or talking_avatar
    result._tensors["MOUTH_SOURCE"] = np.array([0, 2, 1], np.uint8)
    assert _batch(result).mouth_source.tolist() == [0, 2, 1]


async def test_lipsync_audio_never_waits_for_frames_not_yet_sent():
    """remap sends every video frame after the last audio: its audio must go through whole,
    while audio that can already make frames still waits for the window (1 s of frames)."""

    class Silent:  # a Triton that answers nothing: nothing is ever received
        def stream_infer(self, requests, **_):
            async def responses():
                async for _ in requests:
                    pass
                yield _Result(0, 0), None

            return responses()

    fps = {"FPS": np.array([25.0], np.float32)}
    lipsync = TritonSequenceStream(Silent(), "lipsync", dict(fps), takes_frames=True)
    avatar = TritonSequenceStream(Silent(), "talking_avatar", dict(fps))

    async def read(stream):  # the reader task takes the requests off their bounded queue
        async for _ in stream.batches():
            pass

    readers = [asyncio.create_task(read(s)) for s in (lipsync, avatar)]
    for _ in range(10):  # 4 s of audio, no frames: no wait
        await asyncio.wait_for(lipsync.send_audio(np.zeros(6400, np.float32)), 1.0)
    await lipsync.send_audio(
        np.zeros(0, np.float32),
        frames=np.zeros((40, 2, 2, 3), np.uint8),
        source_index=np.arange(40),
    )
    with pytest.raises(TimeoutError):  # now 40 frames can be made: over the window
        await asyncio.wait_for(lipsync.send_audio(np.zeros(6400, np.float32)), 0.5)
    await avatar.send_audio(np.zeros(6400 * 3, np.float32))  # 1.2 s: over the window
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(avatar.send_audio(np.zeros(6400, np.float32)), 0.5)
    await lipsync.aclose()
    await avatar.aclose()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
