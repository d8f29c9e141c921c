"""What a generation counts, and the Progress and Summary events made from it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from a2v_server.domain import MouthSources, Progress, Summary, Timings


@dataclass
class StageClock:
    """Seconds spent per stage (reported in the Summary)."""

    decode: float = 0.0
    inference: float = 0.0
    encode: float = 0.0


class GenerationStats:
    """Counters of one generation, updated by its stages (all in the event loop's thread)."""

    def __init__(self, fps: float) -> None:
        self.started = time.monotonic()
        self.clock = StageClock()
        #: frames per second of the output (the source's for lipsync, set once known)
        self.fps = fps
        self.first_chunk_at: float | None = None
        self.frames_total = 0
        self.frames_done = 0
        self.audio_seconds = 0.0
        #: a2v.v1.AudioKind number as judged by the model, 0 = unknown
        self.audio_kind = 0
        self.bytes = 0
        self.chunks = 0
        #: lipsync: frames per MOUTH_SOURCE value (0 passed through, 1 warped, 2 retrieved);
        #: None until the model reports one (other models, older lipsync models)
        self.mouth_sources: np.ndarray | None = None
        #: Summary.warnings: "field: why", met while rendering
        self.warnings: list[str] = []

    def count_mouths(self, sources: np.ndarray | None) -> None:
        """Add one batch's MOUTH_SOURCE values (None: the model does not report them)."""
        if sources is None:
            return
        counts = np.bincount(np.asarray(sources, np.int64).ravel(), minlength=3)[:3]
        self.mouth_sources = counts if self.mouth_sources is None else self.mouth_sources + counts

    def chunk_sent(self, size: int) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.monotonic()
        self.chunks += 1
        self.bytes += size

    def progress(self) -> Progress:
        return Progress(self.frames_done, self.frames_total, self.audio_seconds)

    def summary(self) -> Summary:
        now = time.monotonic()
        return Summary(
            frames=self.frames_done,
            duration_seconds=self.frames_done / self.fps,
            bytes=self.bytes,
            chunks=self.chunks,
            timings=Timings(
                total=now - self.started,
                first_chunk=(self.first_chunk_at or now) - self.started,
                decode=self.clock.decode,
                inference=self.clock.inference,
                encode=self.clock.encode,
            ),
            audio_kind=self.audio_kind,
            mouth_sources=None
            if self.mouth_sources is None
            else MouthSources(*(int(n) for n in self.mouth_sources)),
            warnings=tuple(self.warnings),
        )
