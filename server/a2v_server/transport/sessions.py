"""Generation sessions that outlive a dropped connection, so a client can resume.

A generation writes its output events into a ``Session``; the Generate call (and later any
Resume call) reads them from there. The session keeps what was already sent for a while
(bounded by bytes) so a client that lost its connection can continue after the last chunk it
received, and it applies backpressure: the generation waits while too much output is unread.
When nobody has been reading for ``detach_seconds`` the generation is cancelled; a finished
session is forgotten ``retention_seconds`` after its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial

from a2v_server.domain import Chunk, OutputEvent
from a2v_server.errors import A2VError, NotFound, ResumeTooLate, without_traceback

log = logging.getLogger(__name__)


def _size(event: OutputEvent) -> int:
    return len(event.segment.data) if isinstance(event, Chunk) else 64


class Session:
    def __init__(self, token: str, *, unsent_bytes: int, retained_bytes: int) -> None:
        self.token = token
        self._events: deque[tuple[int, OutputEvent]] = deque()  # (index, event)
        self._next_index = 0  # index the next appended event gets
        self._read = 0  # index of the next event the (latest) reader will get
        self._retained = 0  # bytes of events already read and still kept
        self._unsent = 0  # bytes appended but not yet read
        self._unsent_cap = unsent_bytes
        self._retained_cap = retained_bytes
        self._changed = asyncio.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.readers = 0
        self.detached_at: float | None = time.monotonic()
        self.ended_at: float | None = None
        self.task: asyncio.Task | None = None
        self.resumable = True
        self._cancelled = False

    async def pump(self, events: AsyncGenerator[OutputEvent, None]) -> None:
        """Move a generation's events in (runs as the session's task)."""
        try:
            # aclosing: a cancel that lands while this task waits for room below must still
            # close the generation now (its encoder, Triton sequence, threads), not whenever
            # the garbage collector finalises the suspended generator.
            async with contextlib.aclosing(events):
                async for event in events:
                    async with self._changed:
                        await self._changed.wait_for(lambda: self._unsent < self._unsent_cap)
                        self._events.append((self._next_index, event))
                        self._next_index += 1
                        self._unsent += _size(event)
                        self._changed.notify_all()
        except BaseException as exc:
            if not isinstance(exc, A2VError | asyncio.CancelledError):  # a bug: log it all
                log.error("session %s: the generation crashed", self.token[:6], exc_info=exc)
            # Readers (this call, resumes) get it without the traceback, which refers back
            # to this session (see without_traceback).
            self.error = without_traceback(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            async with self._changed:
                self.done = True
                self.ended_at = time.monotonic()
                self._changed.notify_all()

    async def follow(self, after_sequence: int | None = None) -> AsyncIterator[OutputEvent]:
        """The events from the start, or after chunk ``after_sequence``; ends with the
        generation (raising its error, if any)."""
        start = self._position_after(after_sequence)
        self.readers += 1
        self.detached_at = None
        try:
            index = start
            while True:
                async with self._changed:
                    await self._changed.wait_for(partial(self._has_after, index))
                    batch = [(i, e) for i, e in self._events if i >= index]
                    if not batch and self.done:
                        break
                for i, event in batch:
                    yield event
                    index = i + 1
                    await self._mark_read(index)
            if self.error is not None:
                raise self.error
        finally:
            self.readers -= 1
            if self.readers == 0:
                self.detached_at = time.monotonic()

    def _has_after(self, index: int) -> bool:
        return self.done or self._next_index > index

    def _position_after(self, sequence: int | None) -> int:
        if sequence is None:
            if self._events and self._events[0][0] > 0:
                raise ResumeTooLate("the start of this session is no longer retained")
            return 0
        for i, event in self._events:
            if isinstance(event, Chunk) and event.sequence_number == sequence:
                return i + 1
        raise ResumeTooLate(
            f"chunk {sequence} is no longer retained (or was never sent): start the "
            "generation again"
        )

    async def _mark_read(self, index: int) -> None:
        async with self._changed:
            while self._read < index:
                for i, event in self._events:
                    if i == self._read:
                        self._unsent -= _size(event)
                        self._retained += _size(event)
                        break
                self._read += 1
            # Forget the oldest read events beyond the retention budget.
            while self._retained > self._retained_cap and self._events:
                i, event = self._events[0]
                if i >= self._read:
                    break
                self._events.popleft()
                self._retained -= _size(event)
            self._changed.notify_all()

    def cancel(self) -> None:
        """Stop the generation. Only the first call cancels: a second cancel would interrupt
        the generation's own cleanup (ending its Triton sequence, freeing its encoder)."""
        if self.task is not None and not self.task.done() and not self._cancelled:
            self._cancelled = True
            self.task.cancel()


class SessionStore:
    """All live sessions of this server process, by resume token."""

    def __init__(
        self,
        *,
        detach_seconds: float,
        retention_seconds: float,
        unsent_bytes: int = 8 << 20,
        retained_bytes: int = 16 << 20,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._detach = detach_seconds
        self._retention = retention_seconds
        self._unsent = unsent_bytes
        self._retained = retained_bytes
        self._sweeper: asyncio.Task | None = None

    def start(
        self, events: AsyncGenerator[OutputEvent, None], *, resumable: bool = True
    ) -> Session:
        """Run ``events`` into a new session. A session that is not resumable keeps nothing
        once its reader has it, and is forgotten as soon as it ends."""
        token = secrets.token_urlsafe(18)
        session = Session(
            token,
            unsent_bytes=self._unsent,
            retained_bytes=self._retained if resumable else 0,
        )
        session.resumable = resumable
        session.task = asyncio.create_task(session.pump(events), name=f"a2v-session-{token[:6]}")
        self._sessions[token] = session
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="a2v-session-sweeper")
        return session

    def get(self, token: str) -> Session:
        session = self._sessions.get(token)
        if session is None:
            raise NotFound(
                "unknown or expired resume token: the session ended more than "
                f"{self._retention:g} s ago or was never started here; start again",
                field="resume_token",
            )
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    async def _sweep(self) -> None:
        while self._sessions:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for token, s in list(self._sessions.items()):
                if (
                    not s.done
                    and s.readers == 0
                    and s.detached_at is not None
                    and (now - s.detached_at > self._detach)
                ):
                    log.info(
                        "session %s: no reader for %g s, cancelling it", token[:6], self._detach
                    )
                    s.cancel()
                retention = self._retention if s.resumable else 0.0
                if (
                    s.done
                    and s.ended_at is not None
                    and s.readers == 0
                    and (now - s.ended_at >= retention)
                ):
                    del self._sessions[token]

    async def aclose(self) -> None:
        for s in self._sessions.values():
            s.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(
            *(s.task for s in self._sessions.values() if s.task), return_exceptions=True
        )
        self._sessions.clear()
