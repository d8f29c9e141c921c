"""One generation session: the output events a generation writes and the readers that take them
(the store of all sessions, by resume token, is sessions.py). Over 300 lines for one idea: a
session's events, positions and readers are one state (taking an event moves the reader, the
unsent frontier and the retained window together), so they stay one class.

A generation writes its output events into a ``Session``; the Generate call, and later any
Resume call, reads them from there through a ``Reader`` of its own.

* Positions: each reader has its own position. The session keeps every event no reader has
  taken yet ("unsent", at most ``unsent_bytes``: beyond that the generation waits, which is the
  backpressure) and, behind the furthest reader, the most recent taken events up to
  ``retained_bytes`` (nothing for a session that is not resumable), for a Resume after a dropped
  connection and for a slower second reader. A reader that falls behind that window gets
  ``ResumeTooLate`` (OUT_OF_RANGE) for the event it can no longer have: never a gap.
* Readers: at most ``READERS_PER_SESSION`` at once (the Generate call and one Resume, or two
  Resumes while the server has not yet noticed a dropped connection).
* A reader that takes nothing for ``stall_seconds`` while output waits for it (a client that
  does not read its responses; gRPC's own buffers are full) is dropped with DEADLINE_EXCEEDED,
  which its call reports when the client reads again. If that leaves the session without a
  reader, its generation stops then, unless it is resumable and has all its input: then it
  is left detached, as if the connection had dropped, for a Resume (its call's end would cut
  off input still to come, which a Resume cannot repair).
* Ends: a generation stopped by ``Session.cancel`` ends its readers with the reason given
  (Cancel(token): ``sessions.Cancelled``, CANCELLED at the edge; the store's sweeper:
  ``ResumeTooLate``).
* Stream slots (``security.StreamLimiter``): a session holds its generation's slot until the
  generation ends or is cancelled (its call's end when not resumable, Cancel(token), the
  sweeper, a stalled reader), not just while a call reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable

from a2v_server.domain import Chunk, OutputEvent
from a2v_server.errors import (
    A2VError,
    DeadlineExceeded,
    ResourceExhausted,
    ResumeTooLate,
    Unavailable,
    without_traceback,
)

log = logging.getLogger(__name__)

#: readers of one session at once
READERS_PER_SESSION = 2


def _size(event: OutputEvent) -> int:
    return len(event.segment.data) if isinstance(event, Chunk) else 64


def _fresh(error: BaseException) -> BaseException:
    """A copy of a kept error for one reader to raise: raising the kept one would give it a
    traceback through that reader's frames, kept (with them) as long as the session."""
    try:
        copied = copy.copy(error)
    except Exception:
        return error
    return copied  # copy.copy rebuilds it from its args: no traceback


def stalled_reader_error(seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the client stopped reading its responses (none taken for {seconds:g} s while output "
        "was waiting): read the stream as it arrives"
    )


class Reader:
    """One call's place in a session: ``async for event in reader``. Ends with the
    generation, raising its error (if any); ``close`` detaches it (the call ended)."""

    def __init__(self, session: Session, position: int) -> None:
        self._session = session
        self.position = position  # index of the next event this reader gets
        self.last_sequence: int | None = None  # the last chunk it took
        self.took_at = time.monotonic()  # when it last took an event (or attached)
        self.waiting = False  # in the session, waiting for the next event
        self.error: BaseException | None = None  # set when the session dropped this reader

    def __aiter__(self) -> Reader:
        return self

    async def __anext__(self) -> OutputEvent:
        return await self._session._next(self)

    def close(self) -> None:
        self._session._detach(self)


class Session:
    def __init__(
        self,
        token: str,
        *,
        key: str = "",
        unsent_bytes: int,
        retained_bytes: int,
        resumable: bool = True,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.token = token
        self.key = key  # the API key id that started it
        self.resumable = resumable
        # (event, size, when appended); the first one's index is _next_index - len(_events)
        self._events: deque[tuple[OutputEvent, int, float]] = deque()
        self._next_index = 0  # index the next appended event gets
        self._frontier = 0  # index of the first event no reader has taken yet
        self._unsent = 0  # bytes of the events from _frontier on
        self._retained = 0  # bytes of the kept events before _frontier
        self._unsent_cap = unsent_bytes
        self._retained_cap = retained_bytes if resumable else 0
        self._changed = asyncio.Event()  # set (and replaced) on every change
        self._readers: set[Reader] = set()
        self._on_end = on_end
        self._stop_reason: BaseException | None = None
        self.error: BaseException | None = None
        self.detached_at: float | None = time.monotonic()
        self.ended_at: float | None = None
        self.task: asyncio.Task | None = None
        #: the generation has all its input (set by whoever feeds it; a session whose input
        #: still comes from a stalled reader's call cannot go on without that call)
        self.input_complete = True
        #: some reader took every event, the last included (nobody will resume it)
        self.delivered = False

    @property
    def readers(self) -> int:
        return len(self._readers)

    # --- the generation's side ----------------------------------------------------------------
    def start(self, events: AsyncGenerator[OutputEvent, None]) -> None:
        self.task = asyncio.create_task(self.pump(events), name=f"a2v-session-{self.token[:6]}")
        # Not a finally in pump: a task cancelled before its first step never runs its body.
        self.task.add_done_callback(self._ended)

    async def pump(self, events: AsyncGenerator[OutputEvent, None]) -> None:
        """Move a generation's events in (runs as the session's task)."""
        try:
            # aclosing: a cancel that lands while this task waits for room below must still
            # close the generation now (its encoder, Triton sequence, threads), not whenever
            # the garbage collector finalises the suspended generator.
            async with contextlib.aclosing(events):
                async for event in events:
                    while self._unsent >= self._unsent_cap:
                        await self._wait()
                    size = _size(event)
                    self._events.append((event, size, time.monotonic()))
                    self._next_index += 1
                    self._unsent += size
                    self._notify()
        except asyncio.CancelledError:
            self.error = self._stopped()
            raise
        except BaseException as exc:
            if not isinstance(exc, A2VError):  # a bug: log it all
                log.error("session %s: the generation crashed", self.token[:6], exc_info=exc)
            # Readers (this call, resumes) get it without the traceback, which refers back
            # to this session (see without_traceback).
            self.error = without_traceback(exc)

    @property
    def done(self) -> bool:
        """The generation has ended (its output may still be read)."""
        return self.ended_at is not None

    def _stopped(self) -> BaseException:
        return self._stop_reason or Unavailable("the server stopped this generation early; retry")

    def _ended(self, task: asyncio.Task) -> None:
        if self.error is None and task.cancelled():  # cancelled before it ran
            self.error = self._stopped()
        self.ended_at = time.monotonic()
        self._free_slot()  # before any reader can end its call
        self._notify()

    def _free_slot(self) -> None:
        if self._on_end is not None:
            on_end, self._on_end = self._on_end, None
            on_end()

    def cancel(self, reason: BaseException) -> None:
        """Stop the generation; its readers end with ``reason``. Only the first call cancels:
        a second cancel would interrupt the generation's own cleanup (ending its Triton
        sequence, freeing its encoder)."""
        if self.task is not None and not self.task.done() and self._stop_reason is None:
            self._stop_reason = reason
            self.task.cancel()
            # Its slot is free at once: a cancelled generation renders nothing more, and what
            # is left, its cleanup (ending its Triton sequence, freeing its encoder), is
            # bounded. A client that cancels and starts again at its limit is not refused.
            self._free_slot()

    # --- the readers' side --------------------------------------------------------------------
    def attach(self, after_sequence: int | None = None) -> Reader:
        """A reader from the start, or after chunk ``after_sequence``."""
        if len(self._readers) >= READERS_PER_SESSION:
            raise ResourceExhausted(
                f"this generation already has {READERS_PER_SESSION} open readers (its Generate "
                "call and Resume calls): end one, or wait until the server has noticed a "
                "dropped connection, and retry"
            )
        reader = Reader(self, self._position_after(after_sequence))
        reader.last_sequence = after_sequence
        self._readers.add(reader)
        self.detached_at = None
        return reader

    def _first(self) -> int:
        """Index of the oldest kept event."""
        return self._next_index - len(self._events)

    def _position_after(self, sequence: int | None) -> int:
        first = self._first()
        if sequence is None:
            if first > 0:
                raise ResumeTooLate("the start of this session is no longer retained")
            return 0
        # Only chunks that were sent: a reader never starts beyond the frontier.
        for index in range(first, self._frontier):
            event = self._events[index - first][0]
            if isinstance(event, Chunk) and event.sequence_number == sequence:
                return index + 1
        raise ResumeTooLate(
            f"chunk {sequence} is no longer retained (or was never sent): start the "
            "generation again"
        )

    async def _next(self, reader: Reader) -> OutputEvent:
        while True:
            if reader.error is not None:
                raise _fresh(reader.error)
            if reader.position < self._next_index:
                return self._take(reader)
            if self.done:
                self._detach(reader)
                if self.error is not None:
                    raise _fresh(self.error)
                self.delivered = True  # a reader took everything, to the end
                raise StopAsyncIteration
            reader.waiting = True
            try:
                await self._wait()
            finally:
                reader.waiting = False

    def _take(self, reader: Reader) -> OutputEvent:
        first = self._first()
        if reader.position < first:
            self._detach(reader)
            after = (
                f"after chunk {reader.last_sequence}"
                if reader.last_sequence is not None
                else "from the start"
            )
            raise ResumeTooLate(
                f"this call read too slowly: the output {after} is no longer kept (another "
                "reader of this generation is far ahead, and only a bounded window is kept "
                "behind it): read faster, or start the generation again"
            )
        event, size, _ = self._events[reader.position - first]
        reader.position += 1
        reader.took_at = time.monotonic()
        if isinstance(event, Chunk):
            reader.last_sequence = event.sequence_number
        if reader.position > self._frontier:  # the first reader to take it
            self._frontier = reader.position
            self._unsent -= size
            self._retained += size
            # Forget the oldest taken events beyond the retention budget.
            while self._retained > self._retained_cap and self._first() < self._frontier:
                self._retained -= self._events.popleft()[1]
            self._notify()  # room for the generation
        return event

    def _detach(self, reader: Reader) -> None:
        if reader in self._readers:
            self._readers.discard(reader)
            if not self._readers:
                self.detached_at = time.monotonic()

    def check_stalled(self, now: float, seconds: float) -> None:
        """Drop the readers that took nothing for ``seconds`` while output waited for them."""
        for reader in list(self._readers):
            if reader.waiting or reader.position >= self._next_index:
                continue  # nothing waits for it
            offset = reader.position - self._first()
            waiting_since = reader.took_at
            if offset >= 0:  # since when its next event has been there
                waiting_since = max(waiting_since, self._events[offset][2])
            if now - waiting_since < seconds:
                continue
            log.info(
                "session %s: a reader took nothing for %g s; dropping it", self.token[:6], seconds
            )
            reader.error = error = stalled_reader_error(seconds)
            self._detach(reader)
            if not self._readers and not (self.resumable and self.input_complete):
                self.cancel(error)

    def forget(self) -> None:
        """Drop the kept output (the store forgot this session; a reader of it that is still
        stuck in a write holds nothing large)."""
        self._events.clear()
        self._unsent = self._retained = 0

    # --- waiting --------------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self) -> None:
        """Wait for the next change. The caller checked its condition just before, with no
        await in between, so no change can be missed."""
        await self._changed.wait()
