"""Bookkeeping of a Triton sequence stream, as small pure classes (no I/O, no asyncio)."""

from __future__ import annotations

from a2v_server.errors import ModelFault
from a2v_server.inference.backend import FrameBatch


class FrameOrder:
    """Puts frame batches back in frame order.

    Triton does not keep a decoupled model's responses in order across the requests of a
    stream (triton-inference-server/server#4918; seen here: the first batch of one request
    overtook the last batch of the one before, "got 88, expected 87"). A batch that arrives
    early waits here for the ones before it; a repeated batch, or a gap left at the end of the
    stream, is the model's fault.
    """

    def __init__(self, start: int = 0) -> None:
        #: index of the next frame to hand out
        self.expected = start
        self._early: dict[int, FrameBatch] = {}  # first_index -> batch that overtook others

    def push(self, batch: FrameBatch) -> list[FrameBatch]:
        """The batches that can go out now, in order (none while ``batch`` is early)."""
        if batch.first_index != self.expected:
            if batch.first_index < self.expected or batch.first_index in self._early:
                raise ModelFault(f"the model sent frame {batch.first_index} twice")
            self._early[batch.first_index] = batch
            return []
        ready: list[FrameBatch] = []
        item: FrameBatch | None = batch
        while item is not None:
            ready.append(item)
            self.expected += len(item.frames)
            item = self._early.pop(self.expected, None)
        return ready

    def finish(self) -> None:
        """The stream ended: every frame must have come."""
        if self._early:
            raise ModelFault(
                f"the model skipped frames (expected frame {self.expected}, got frames from "
                f"{min(self._early)} on)"
            )


class SendTimes:
    """When each request of a sequence went out, for the round-trip metric (sent -> its first
    frames back).

    Request ids are "<sequence id>-<n>". The model takes a sequence's requests in order, and
    one that made no frames gets no response at all (most live requests of 20-100 ms), so an
    answer to request n also forgets every request before it: the map does not grow with the
    stream's length.
    """

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}

    def sent(self, request_id: str, at: float) -> None:
        self._sent[request_id] = at

    def answered(self, request_id: str) -> float | None:
        """When ``request_id`` was sent, or None after its first response."""
        at = self._sent.pop(request_id, None)
        number = request_number(request_id)
        while self._sent:
            oldest = next(iter(self._sent))
            if request_number(oldest) >= number:
                break
            del self._sent[oldest]
        return at

    def __len__(self) -> int:
        return len(self._sent)


def request_number(request_id: str) -> int:
    """n of a request id "<sequence id>-<n>"; -1 if it has none."""
    try:
        return int(request_id.rpartition("-")[2])
    except ValueError:
        return -1
