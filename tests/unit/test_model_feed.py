"""ModelFeed's first-frame hold: the model gets the first frame's audio, the rest once the first
frame is encoded (or after a timeout), and never loses or reorders a sample."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from a2v_server.pipeline import model_feed
from a2v_server.pipeline.model_feed import MODEL_CHUNK, ModelFeed

PIECE = 1600  # 100 ms at the model rate
FIRST = 4480  # 0.28 s: a frame at 25 fps and a 0.24 s lookahead


class RecordingStream:
    """A model stream that keeps what it is sent."""

    def __init__(self) -> None:
        self.audio: list[np.ndarray] = []
        self.last = False

    async def send_audio(self, samples, *, last=False, frames=None, source_index=None, origin=None):
        assert not self.last, "audio after the last request"
        self.audio.append(np.asarray(samples))
        self.last = last

    @property
    def sent(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)


def _feed(stream: RecordingStream) -> ModelFeed:
    return ModelFeed(stream, SimpleNamespace(lipsync=None), "cut_off", 25.0)  # type: ignore[arg-type]


def _speech(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * 16000), dtype=np.float32)  # every sample tells its place


async def test_the_first_frames_audio_goes_alone_until_the_first_frame_is_encoded():
    stream, encoded = RecordingStream(), asyncio.Event()
    feed = _feed(stream)
    feed.hold_after_first(FIRST, encoded)
    audio = _speech(2.0)
    for k in range(0, 16000, PIECE):  # the first second arrives before any frame is encoded
        await feed.add(audio[k : k + PIECE])
    assert len(stream.sent) == FIRST
    encoded.set()
    for k in range(16000, len(audio), PIECE):
        await feed.add(audio[k : k + PIECE])
    assert await feed.finish() == 50
    assert stream.last
    np.testing.assert_array_equal(stream.sent, audio)  # nothing lost, nothing reordered


async def test_the_end_of_the_audio_waits_for_the_first_frame(monkeypatch):
    monkeypatch.setattr(model_feed, "HOLD_TIMEOUT_SECONDS", 60.0)  # a stalled machine too
    stream, encoded = RecordingStream(), asyncio.Event()
    feed = _feed(stream)
    feed.hold_after_first(FIRST, encoded)
    audio = _speech(1.0)
    for k in range(0, len(audio), PIECE):
        await feed.add(audio[k : k + PIECE])
    finishing = asyncio.create_task(feed.finish())
    await asyncio.sleep(0.2)
    assert not finishing.done()
    assert len(stream.sent) == FIRST and not stream.last
    encoded.set()
    assert await finishing == 25
    np.testing.assert_array_equal(stream.sent, audio)
    assert stream.last


async def test_a_first_frame_that_never_comes_releases_the_audio_after_the_timeout(monkeypatch):
    monkeypatch.setattr(model_feed, "HOLD_TIMEOUT_SECONDS", 0.05)
    stream = RecordingStream()
    feed = _feed(stream)
    feed.hold_after_first(FIRST, asyncio.Event())  # never set
    audio = _speech(1.0)
    for k in range(0, len(audio), PIECE):
        await feed.add(audio[k : k + PIECE])
    await asyncio.wait_for(feed.finish(), 5)
    np.testing.assert_array_equal(stream.sent, audio)
    assert stream.last


@pytest.mark.parametrize("held", [False, True])
async def test_audio_shorter_than_the_first_frames_share_goes_out_at_once(held):
    stream = RecordingStream()
    feed = _feed(stream)
    if held:
        feed.hold_after_first(FIRST, asyncio.Event())
    audio = _speech(0.2)
    await feed.add(audio)
    await asyncio.wait_for(feed.finish(), 0.5)  # no wait for a frame that needs the end
    np.testing.assert_array_equal(stream.sent, audio)
    assert stream.last


async def test_without_a_hold_audio_goes_out_as_it_comes():
    stream = RecordingStream()
    feed = _feed(stream)
    audio = _speech(1.0)
    for k in range(0, len(audio), PIECE):
        await feed.add(audio[k : k + PIECE])
        assert len(stream.sent) == (k + PIECE) // MODEL_CHUNK * MODEL_CHUNK


async def test_lipsyncs_remap_is_not_held():
    """remap sends its frames after the last audio: its first frame cannot come before the
    end, so holding the audio for it would only wait out the timeout."""
    stream = RecordingStream()
    lipsync = SimpleNamespace()  # remap sends no frames before the end: none is touched here
    feed = ModelFeed(stream, SimpleNamespace(lipsync=lipsync), "remap", 25.0)  # type: ignore[arg-type]
    feed.hold_after_first(FIRST, asyncio.Event())  # never set
    audio = _speech(1.0)
    for k in range(0, len(audio), PIECE):
        await feed.add(audio[k : k + PIECE])
    np.testing.assert_array_equal(stream.sent, audio)
