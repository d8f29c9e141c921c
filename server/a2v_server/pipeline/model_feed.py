"""Audio, and for lipsync the matching source video frames, on their way to the model."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE, frame_count
from a2v_server.errors import InvalidInput
from a2v_server.inference.backend import ModelStream
from a2v_server.pipeline.lipsync_frames import LipsyncFrames, Waiting
from a2v_server.pipeline.visual import Visual

#: audio is sent to the model in pieces of at least this many samples (100 ms): fewer requests,
#: still well inside the live-latency budget
MODEL_CHUNK = MODEL_SAMPLE_RATE // 10
#: lipsync: frames prepared (decoded, cropped) per trip to the worker thread
FRAME_GROUP = 8
#: the first-frame hold (``hold_after_first``): audio past the first frame's is sent once that
#: frame is encoded, or after this long at the latest (a model that wanted more audio for its
#: first frame than it declared would otherwise wait for it forever)
HOLD_TIMEOUT_SECONDS = 1.0


class ModelFeed:
    """Sends audio (and, for lipsync, the matching video frames) to the model stream.

    Output frame i shows the audio at i / fps. Frames go out as soon as the audio that covers
    them has been sent, mapped to source frames by the sync mode (``source_index``); remap needs
    the final length and so sends its frames at the end. The video's length is known once its
    first decoding pass reaches the end: until then output frame i shows source frame i.
    """

    def __init__(self, stream: ModelStream, visual: Visual, mode: str, fps: float) -> None:
        self._stream = stream
        self._lipsync: LipsyncFrames | None = visual.lipsync
        self._mode = mode
        self._fps = fps
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._frames_sent = 0
        self.total = 0  # model-rate samples received
        self._sent_samples = 0  # model-rate samples sent to the model
        #: the first-frame hold: samples sent before it, and what releases it
        self._hold: tuple[int, asyncio.Event] | None = None

    def hold_after_first(self, samples: int, released: asyncio.Event) -> None:
        """Send the model only the first ``samples`` (what its first frame needs) until
        ``released`` is set: the encoder sets it once the first frame is encoded.

        Until then the model would render the next frames on the same two cores as the first
        frame's encode (an I-frame: at 1080p the largest single piece of work before a client
        sees anything), and the first chunk would wait for both. Held, the model is idle
        meanwhile; what it renders later it renders while the first chunk is on its way.

        Not in lipsync's remap mode: it sends its frames after the last audio, so its first
        frame cannot come before the end, and the hold would only add its timeout.
        """
        if self._lipsync is not None and self._mode == "remap":
            return
        self._hold = (samples, released)

    async def add(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self._pending_n += len(samples)
        self.total += len(samples)
        if self._pending_n >= MODEL_CHUNK and not self._holding():
            await self._send(last=False)

    def _holding(self) -> bool:
        """Whether the hold keeps the pending audio back now (the first part goes out)."""
        if self._hold is None:
            return False
        samples, released = self._hold
        if released.is_set():
            self._hold = None
            return False
        return self._sent_samples >= samples

    async def sample_limit(self, samples_after: int) -> int | None:
        """cut_off: the samples the video lasts, once the audio up to ``samples_after`` (model
        rate) reaches its end; None while it does not (or in other modes)."""
        if self._lipsync is None or self._mode != "cut_off":
            return None
        video = self._lipsync.source.video
        if video.length is None:
            needed = frame_count(samples_after, self._fps)
            if needed:  # decode ahead to the frame this audio reaches (cached for later)
                await asyncio.to_thread(video.frame, needed - 1)
        if video.length is None:
            return None
        return round(video.length * MODEL_SAMPLE_RATE / self._fps)

    async def padding_samples(self) -> int:
        """silence mode: the samples of silence that make the audio as long as the video."""
        if self._lipsync is None or self._mode != "silence":
            return 0
        slots = await asyncio.to_thread(self._lipsync.source.video.count_slots)
        return max(0, round(slots * MODEL_SAMPLE_RATE / self._fps) - self.total)

    @property
    def frames(self) -> int:
        """The clip's frame count for the audio received so far (the model's count too)."""
        return frame_count(self.total, self._fps)

    async def finish(self) -> int:
        """Send the rest; returns the clip's frame count."""
        if self._holding():
            assert self._hold is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD_TIMEOUT_SECONDS):  # (not wait_for: pacing.py)
                    await self._hold[1].wait()
            self._hold = None
        await self._send(last=True)
        return self.frames

    async def _send(self, *, last: bool) -> None:
        audio = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending, self._pending_n = [], 0
        if self._hold is not None and not last:
            room = max(0, self._hold[0] - self._sent_samples)
            if len(audio) > room:  # the first frame's audio now, the rest once released
                audio, rest = audio[:room], audio[room:]
                self._pending, self._pending_n = [rest], len(rest)
        self._sent_samples += len(audio)
        if self._lipsync is None:
            await self._stream.send_audio(audio, last=last)
            return
        # The audio first, then the frames it covers: the model renders a frame once it has
        # both, and the frames in flight are bounded (the feed waits for the encoder to take
        # some), so frames sent ahead of their audio could wait for each other forever.
        if len(audio):
            await self._stream.send_audio(audio)
        n_out = self.frames
        # while streaming: the frames whose whole interval the audio covers
        sent = self._sent_samples  # (the hold may keep some received audio back)
        covered = n_out if last else min(n_out, int(sent * self._fps / MODEL_SAMPLE_RATE))
        if self._mode == "remap" and not last:
            covered = 0
        while self._frames_sent < covered:
            await self._lipsync.in_flight.wait_room()
            end = min(covered, self._frames_sent + FRAME_GROUP)
            prepared = await asyncio.to_thread(self._prepare, self._frames_sent, end, n_out)
            self._frames_sent = end
            for window, indices, crops in _by_window(prepared):
                await self._stream.send_audio(
                    np.zeros(0, np.float32), frames=crops, source_index=indices, origin=window[:2]
                )
        if last:
            await self._stream.send_audio(np.zeros(0, np.float32), last=True)

    def _prepare(self, start: int, end: int, n_out: int) -> list[tuple[int, Waiting]]:
        """Output frames start..end-1: decoded, fitted, cropped to the face window (a worker
        thread); each is registered as in flight. Returns (source slot, Waiting) pairs."""
        assert self._lipsync is not None
        source, window, in_flight = (
            self._lipsync.source,
            self._lipsync.window,
            self._lipsync.in_flight,
        )
        prepared = []
        i420 = self._stream.takes_i420
        for i in range(start, end):
            slot = self._slot(i, n_out)
            frame = source.frame(slot)
            if frame is None:  # past a shorter decodable end than the packets promised
                slot = max(0, (source.video.length or 1) - 1)
                frame = source.frame(slot)
            if frame is None:
                raise InvalidInput("the video contains no frames", field="video")
            box = window.window
            waiting = Waiting(frame, box, source.crop(frame, box, i420=i420), slot)
            in_flight.add(i, waiting)
            prepared.append((slot, waiting))
        return prepared

    def _slot(self, i: int, n_out: int) -> int:
        assert self._lipsync is not None
        video = self._lipsync.source.video
        if self._mode == "remap":
            return source_index(i, video.count_slots(), "remap", n_out)
        if video.length is None and video.frame(i) is not None:
            return i  # still inside the video (its length is not known yet)
        return source_index(i, video.length or 1, self._mode, n_out)


def _by_window(prepared: list[tuple[int, Waiting]]):
    """Runs of consecutive frames that share a window: one model request each."""
    run: list[tuple[int, Waiting]] = []
    for item in prepared:
        if run and item[1].window != run[-1][1].window:
            yield _request(run)
            run = []
        run.append(item)
    if run:
        yield _request(run)


def _request(run: list[tuple[int, Waiting]]):
    window = run[0][1].window
    indices = np.array([slot for slot, _ in run], dtype=np.int64)
    return window, indices, np.stack([w.crop for _, w in run])


def source_index(i: int, n_src: int, mode: str, n_out: int | None = None) -> int:
    """Which source frame output frame ``i`` shows, for a lipsync sync mode.

    bounce: forward then backward (no jump); loop: wrap around; cut_off / silence: play once,
    holding the last frame after the end; remap: stretch the source over ``n_out`` frames.
    """
    if n_src <= 1:
        return 0
    if mode == "loop":
        return i % n_src
    if mode == "bounce":
        period = 2 * n_src - 2
        k = i % period
        return k if k < n_src else period - k
    if mode == "remap":
        if not n_out or n_out <= 1:
            return 0
        return min(n_src - 1, round(i * (n_src - 1) / (n_out - 1)))
    return min(i, n_src - 1)  # cut_off, silence
