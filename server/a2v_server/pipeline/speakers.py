"""Several speakers in one clip (GenerateConfig.speakers / channel_speakers): one model stream
per face, their frames merged into one picture per frame.

* Each face's stream gets the audio only while that face speaks (``SpeakerGates``): within its
  turns, or where its channel is clearly the loudest; silence elsewhere, so its mouth rests
  there (the talking avatar idles with blinks and breathing). Every stream gets the same video
  frames (lipsync: whole frames, as each stream follows a face of its own).
* ``MultiStream`` is one ModelStream over them: its batches hold, per frame run, one part per
  face (``FrameBatch.parts``), each with its model's region and pixels; the composer pastes
  them all. Lipsync pastes a face's part only while it speaks (``FrameBatch.shown``): outside
  its turns a face is the source's own pixels.
* The side outputs of a merged frame (mouth opening, viseme, face found, ...) are those of the
  face whose mouth is the most open there among those shown.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import replace

import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE
from a2v_server.domain import Speaker
from a2v_server.errors import InvalidInput, ModelFault
from a2v_server.inference.backend import FrameBatch, ModelStream
from a2v_server.pipeline.ranges import batch_part

#: channel routing: 10 ms decisions; a channel speaks where it is this much louder than every
#: other one and above the floor, and goes on speaking for HOLD_SECONDS after it stops being so
HOP = MODEL_SAMPLE_RATE // 100
LEAD_DB = 6.0
FLOOR_DB = -45.0
HOLD_SECONDS = 0.25


class SpeakerGates:
    """Per speaker, whether it speaks at each model-rate sample of the clip."""

    def __init__(self, speakers: tuple[Speaker, ...], output_rate: int) -> None:
        self.speakers = speakers
        self._by_channel = any(s.channel is not None for s in speakers)
        self._ratio = output_rate / MODEL_SAMPLE_RATE
        self._pending = np.zeros((0, 0), np.float32)
        #: channel routing: the decision of each 10 ms hop so far, (hops, speakers)
        self._hops: list[np.ndarray] = []
        self._held = np.zeros(len(speakers))  # hops of hold left per speaker

    def check_channels(self, channels: int) -> None:
        """INVALID_ARGUMENT when a speaker's channel is not in the audio."""
        for s in self.speakers:
            if s.channel is not None and s.channel >= channels:
                raise InvalidInput(
                    f"channel_speakers names channel {s.channel}, but the audio has {channels} "
                    f"channel(s) (0 to {channels - 1}): route by the channels it has, or give "
                    "speakers as turns in time",
                    field="config.channel_speakers",
                )

    def observe(self, output_pcm: np.ndarray) -> None:
        """The output audio (channels, n) as it is decoded: channel routing decides on it."""
        if not self._by_channel:
            return
        pcm = (
            output_pcm
            if not self._pending.size
            else np.concatenate((self._pending, output_pcm), axis=1)
        )
        step = round(HOP * self._ratio)
        whole = pcm.shape[1] // step
        for k in range(whole):
            hop = pcm[:, k * step : (k + 1) * step]
            level = 10 * np.log10(np.mean(hop * hop, axis=1) + 1e-12)
            now = np.zeros(len(self.speakers), bool)
            for i, s in enumerate(self.speakers):
                c = s.channel if s.channel is not None else 0
                if c >= len(level):
                    continue
                others = np.delete(level, c)
                lead = level[c] - (others.max() if others.size else -120.0)
                now[i] = level[c] >= FLOOR_DB and lead >= LEAD_DB
            self._held = np.where(now, HOLD_SECONDS * 100, np.maximum(self._held - 1, 0))
            self._hops.append(now | (self._held > 0))
        self._pending = pcm[:, whole * step :]

    def gate(self, speaker: int, start: int, count: int) -> np.ndarray:
        """Whether ``speaker`` speaks at model samples start .. start + count - 1 (bool)."""
        t = (start + np.arange(count)) / MODEL_SAMPLE_RATE
        s = self.speakers[speaker]
        if s.channel is None:
            on = np.zeros(count, bool)
            for a, b in s.turns:
                on |= (t >= a) & (t < (math.inf if b is None else b))
            return on
        if not self._hops or not count:
            return np.zeros(count, bool)
        hops = np.minimum((start + np.arange(count)) // HOP, len(self._hops) - 1)
        first = int(hops[0])  # the decisions of the hops these samples fall in, looked up once
        decided = np.array([row[speaker] for row in self._hops[first : int(hops[-1]) + 1]], bool)
        return decided[hops - first]

    def at_frames(self, speaker: int, first: int, count: int, fps: float) -> np.ndarray:
        """Whether ``speaker`` speaks at frames first .. first + count - 1 (at their times)."""
        samples = np.round((first + np.arange(count)) / fps * MODEL_SAMPLE_RATE).astype(int)
        return np.array([self.gate(speaker, int(s), 1)[0] for s in samples], bool)


class MultiStream:
    """One ModelStream over a stream per speaker (see the module doc)."""

    def __init__(
        self, streams: list[ModelStream], gates: SpeakerGates, fps: float, *, show_all: bool
    ) -> None:
        self._streams = streams
        self._gates = gates
        self._fps = fps
        self._show_all = show_all  # the avatar: every face in every frame (idle ones too)
        self._sent = 0  # model samples sent so far

    @property
    def takes_i420(self) -> bool:
        """Every speaker's stream gets the same crops: I420 where all of them take it."""
        return all(s.takes_i420 for s in self._streams)

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
        origin: tuple[int, int] | None = None,
    ) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        start, self._sent = self._sent, self._sent + len(x)
        sends = []
        for i, stream in enumerate(self._streams):
            mine = x * self._gates.gate(i, start, len(x)) if len(x) else x
            sends.append(
                stream.send_audio(
                    mine, last=last, frames=frames, source_index=source_index, origin=origin
                )
            )
        await asyncio.gather(*sends)

    async def batches(self) -> AsyncGenerator[FrameBatch, None]:
        queues: list[deque[FrameBatch]] = [deque() for _ in self._streams]
        done = [False] * len(self._streams)
        arrived = asyncio.Condition()

        async def read(i: int) -> None:
            frames = self._streams[i].batches()
            try:
                async for batch in frames:
                    async with arrived:
                        queues[i].append(batch)
                        arrived.notify_all()
            finally:
                await frames.aclose()
                async with arrived:
                    done[i] = True
                    arrived.notify_all()

        readers = [asyncio.ensure_future(read(i)) for i in range(len(self._streams))]
        try:
            while True:
                async with arrived:  # every stream has frames, or has ended
                    await arrived.wait_for(
                        lambda: all(q or d for q, d in zip(queues, done, strict=True))
                    )
                for reader in readers:  # a failed stream fails the whole
                    if reader.done() and reader.exception() is not None:
                        raise reader.exception()  # type: ignore[misc]
                if all(queues):
                    yield self._merged(queues)
                elif any(queues):
                    raise ModelFault("one speaker's model ended before the others")
                else:
                    return
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def aclose(self) -> None:
        await asyncio.gather(*(stream.aclose() for stream in self._streams))

    def _merged(self, queues: list[deque[FrameBatch]]) -> FrameBatch:
        """The longest run of frames at the front of every queue within one batch of each."""
        first = queues[0][0].first_index
        if any(q[0].first_index != first for q in queues):
            raise ModelFault("the speakers' models are not at the same frame")
        n = min(len(q[0].frames) for q in queues)
        parts = []
        for q in queues:
            head = q[0]
            if len(head.frames) == n:
                parts.append(q.popleft())
            else:
                parts.append(batch_part(head, 0, n))
                q[0] = batch_part(head, n, len(head.frames))
        shown = [
            np.ones(n, bool) if self._show_all else self._gates.at_frames(i, first, n, self._fps)
            for i in range(len(parts))
        ]
        parts = [replace(p, shown=s) for p, s in zip(parts, shown, strict=True)]
        return _summed(parts)


def _summed(parts: list[FrameBatch]) -> FrameBatch:
    """The merged batch: the parts, and per frame the side outputs of the shown face whose
    mouth is the most open."""
    n = len(parts[0].frames)
    shown = np.stack([np.asarray(p.shown, bool) for p in parts])
    openness = np.where(shown, np.stack([p.mouth_open for p in parts]), -1.0)
    lead = np.argmax(openness, axis=0)  # per frame: which part speaks most
    any_shown = shown.any(axis=0)

    def pick(name: str, fill: float = 0.0) -> np.ndarray | None:
        values = [getattr(p, name) for p in parts]
        if any(v is None for v in values):
            return None
        out = np.stack(values)[lead, np.arange(n)]
        if out.ndim == 1:
            out = np.where(any_shown, out, fill).astype(values[0].dtype)
        return out

    kinds = [p.audio_kind for p in parts if p.audio_kind]
    return FrameBatch(
        first_index=parts[0].first_index,
        frames=parts[0].frames,  # (for the frame count: the composer pastes every part)
        mouth_open=pick("mouth_open"),  # type: ignore[arg-type]
        viseme=pick("viseme", 1),
        head_pose=pick("head_pose"),
        blink=pick("blink"),
        audio_kind=max(kinds) if kinds else 0,
        face_found=pick("face_found"),
        mouth_source=pick("mouth_source"),
        face_score=pick("face_score"),
        parts=tuple(parts),
    )
