"""Generation sessions that outlive a dropped connection, so a client can resume: the store of
this process's live sessions, by resume token (one session and its readers: session.py).

* Tokens: ``SessionStore.start`` runs a generation into a new session under a fresh resume
  token, signed (tokens.py): it names this replica and the API key that started the session.
  Another key's Resume or Cancel finds no such token; a genuine token of another replica's
  session raises ``OwnedElsewhere`` (the servicer forwards the call there).
* The sweeper, while any session is live: drops the readers that stalled (see session.py);
  when nobody has been reading for ``detach_seconds`` the generation is cancelled
  (``ResumeTooLate``); a finished session is forgotten ``retention_seconds`` after its end (at
  once when not resumable).
* Cancel(token) stops a session with ``Cancelled``, which its readers' calls end with.
* Every session buffers at most ``UNSENT_BYTES`` not yet taken and keeps ``RETAINED_BYTES``
  behind its furthest reader, unless the store is given other sizes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable

from a2v_server.domain import OutputEvent
from a2v_server.errors import ResumeTooLate, Unavailable
from a2v_server.transport.session import Session
from a2v_server.transport.tokens import OwnedElsewhere, TokenSigner, unknown_token

log = logging.getLogger(__name__)

#: bytes of output no reader has taken yet, before the generation waits (backpressure)
UNSENT_BYTES = 8 << 20
#: bytes of taken output kept behind the furthest reader, for Resume and slower readers
RETAINED_BYTES = 16 << 20


class Cancelled(Exception):
    """Why a session was stopped by Cancel(token), for its readers: the transport answers
    CANCELLED with ``message`` (errors.py has no domain error for CANCELLED)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionStore:
    """All live sessions of this server process, by resume token."""

    def __init__(
        self,
        *,
        detach_seconds: float,
        retention_seconds: float,
        stall_seconds: float = 30.0,
        unsent_bytes: int | None = None,
        retained_bytes: int | None = None,
        signer: TokenSigner | None = None,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self.signer = signer or TokenSigner(None, "")
        self._detach = detach_seconds
        self._retention = retention_seconds
        self._stall = stall_seconds
        self._unsent = UNSENT_BYTES if unsent_bytes is None else unsent_bytes
        self._retained = RETAINED_BYTES if retained_bytes is None else retained_bytes
        # Often enough for the shortest of the windows it enforces.
        self._interval = min(1.0, max(0.05, min(detach_seconds, stall_seconds) / 4))
        self._sweeper: asyncio.Task | None = None

    def start(
        self,
        events: AsyncGenerator[OutputEvent, None],
        *,
        resumable: bool = True,
        key: str = "",
        on_end: Callable[[], None] | None = None,
    ) -> Session:
        """Run ``events`` into a new session of ``key``; ``on_end`` runs once when the
        generation has ended or was cancelled. A session that is not resumable keeps nothing
        once its reader has it, and is forgotten as soon as it ends."""
        token = self.signer.issue(key)
        session = Session(
            token,
            key=key,
            unsent_bytes=self._unsent,
            retained_bytes=self._retained,
            resumable=resumable,
            on_end=on_end,
        )
        session.start(events)
        self._sessions[token] = session
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="a2v-session-sweeper")
        return session

    def get(self, token: str, key: str = "") -> Session:
        """The session of ``token``, if ``key`` started it (NotFound); ``OwnedElsewhere`` when
        the token is genuine but another replica owns the session."""
        owner = self.signer.check(token, key).owner
        if owner != self.signer.owner:
            raise OwnedElsewhere(owner)
        session = self._sessions.get(token)
        if session is None or session.key != key:
            raise unknown_token(self._retention)
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    def settled(self) -> bool:
        """No generation is running, and every one that ended well has been read to its end
        (or is not resumable): a draining server may exit without losing output a client
        could still resume."""
        return all(
            s.done and (s.delivered or s.error is not None or not s.resumable)
            for s in self._sessions.values()
        )

    async def _sweep(self) -> None:
        while self._sessions:
            await asyncio.sleep(self._interval)
            now = time.monotonic()
            for token, s in list(self._sessions.items()):
                try:
                    self._sweep_one(token, s, now)
                except Exception:  # one bad session must not stop the sweeping of all
                    log.exception("session %s: sweeping it failed", token[:6])

    def _sweep_one(self, token: str, s: Session, now: float) -> None:
        s.check_stalled(now, self._stall)
        if (
            not s.done
            and s.readers == 0
            and s.detached_at is not None
            and (now - s.detached_at > self._detach)
        ):
            log.info("session %s: no reader for %g s, cancelling it", token[:6], self._detach)
            s.cancel(
                ResumeTooLate(
                    f"nobody read this generation for {self._detach:g} s, so the server "
                    f"stopped it: resume within {self._detach:g} s of a dropped "
                    "connection, or start again"
                )
            )
        retention = self._retention if s.resumable else 0.0
        if s.ended_at is not None and s.readers == 0 and now - s.ended_at >= retention:
            del self._sessions[token]
            s.forget()

    async def aclose(self) -> None:
        for s in self._sessions.values():
            s.cancel(Unavailable("the server is shutting down: retry on another server"))
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [self._sweeper, *(s.task for s in self._sessions.values())]
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
        self._sessions.clear()
