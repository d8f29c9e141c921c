"""Audio, and for lipsync the matching source video frames, on their way to the model."""

from __future__ import annotations

import asyncio

import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE, frame_count
from a2v_server.inference.backend import ModelStream
from a2v_server.media.video import FrameStore
from a2v_server.pipeline.visual import Visual

#: audio is sent to the model in pieces of at least this many samples (100 ms): fewer requests,
#: still well inside the live-latency budget
MODEL_CHUNK = MODEL_SAMPLE_RATE // 10


class ModelFeed:
    """Sends audio (and, for lipsync, the matching video frames) to the model stream.

    Output frame i shows the audio at i / fps. Frames go out as soon as the audio that covers
    them has been sent, mapped to source frames by the sync mode (``source_index``); remap needs
    the final length and so sends its frames at the end.
    """

    def __init__(self, stream: ModelStream, visual: Visual, mode: str, fps: float) -> None:
        self._stream = stream
        self._store = visual.frames
        self._mode = mode
        self._fps = fps
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._frames_sent = 0
        self.total = 0  # model-rate samples received
        self._n_src = self._store.count if self._store is not None else 0
        #: cut_off: no audio beyond the video's end
        self.sample_limit = (
            round(self._n_src * MODEL_SAMPLE_RATE / fps)
            if self._store is not None and mode == "cut_off"
            else None
        )

    async def add(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self._pending_n += len(samples)
        self.total += len(samples)
        if self._pending_n >= MODEL_CHUNK:
            await self._send(last=False)

    def padding_samples(self) -> int:
        """silence mode: the samples of silence that make the audio as long as the video."""
        if self._store is None or self._mode != "silence":
            return 0
        return max(0, round(self._n_src * MODEL_SAMPLE_RATE / self._fps) - self.total)

    @property
    def frames(self) -> int:
        """The clip's frame count for the audio received so far (the model's count too)."""
        return frame_count(self.total, self._fps)

    async def finish(self) -> int:
        """Send the rest; returns the clip's frame count."""
        await self._send(last=True)
        return self.frames

    async def _send(self, *, last: bool) -> None:
        audio = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending, self._pending_n = [], 0
        frames = indices = None
        if self._store is not None:
            n_out = self.frames
            # while streaming: the frames whose whole interval the audio covers
            covered = n_out if last else min(n_out, int(self.total * self._fps / MODEL_SAMPLE_RATE))
            if self._mode == "remap" and not last:
                covered = 0
            if covered > self._frames_sent:
                indices = np.array(
                    [
                        source_index(i, self._n_src, self._mode, n_out)
                        for i in range(self._frames_sent, covered)
                    ],
                    dtype=np.int64,
                )
                frames = await asyncio.to_thread(_gather, self._store, indices)
                self._frames_sent = covered
        await self._stream.send_audio(audio, last=last, frames=frames, source_index=indices)


def _gather(store: FrameStore, indices: np.ndarray) -> np.ndarray:
    return np.stack([store[int(i)] for i in indices])


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
