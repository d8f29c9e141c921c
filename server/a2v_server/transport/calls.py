"""What ties a reading call to its session, whose generation outlives it: the Generate call's
requests as the generation's input (``CallInput``, which tells the session when the input is
complete), its stream slot until the session takes it (``SlotClaim``), and the done callback
that detaches a call's reader when the call ends (``on_call_end``)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server.transport.security import Slot
from a2v_server.transport.session import Reader, Session
from a2v_server.transport.sessions import Cancelled


class CallInput:
    """A Generate call's requests after the config, as the generation reads them: tells the
    session when the client has sent its last one, and ends (as a dropped connection does)
    instead of raising once the call has ended with its status."""

    def __init__(self, requests: AsyncIterator[pb.GenerateRequest]) -> None:
        self._requests = requests
        self._session: weakref.ref[Session] | None = None

    def feeds(self, session: Session) -> None:
        session.input_complete = False
        self._session = weakref.ref(session)

    def __aiter__(self) -> CallInput:
        return self

    async def __anext__(self) -> pb.GenerateRequest:
        try:
            request = await anext(self._requests)
        except StopAsyncIteration:
            self._complete()
            raise
        except grpc.aio.AbortError:  # the call already ended with its status
            raise StopAsyncIteration from None
        if isinstance(request, pb.GenerateRequest) and request.HasField("end"):
            self._complete()  # what may follow is refused anyway
        return request

    def _complete(self) -> None:
        if self._session is not None and (session := self._session()) is not None:
            session.input_complete = True


class SlotClaim:
    """A Generate call's stream slot until the call hands it to its session (``take``);
    ``call_ended`` frees it if it was not handed over (twice is fine)."""

    def __init__(self, slot: Slot) -> None:
        self._slot: Slot | None = slot

    def take(self) -> Callable[[], None]:
        slot, self._slot = self._slot, None
        assert slot is not None
        return slot.release

    def call_ended(self, _context: Any = None) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None


def on_call_end(session: Session | None, reader: Reader) -> Callable[[Any], None]:
    """Done callback of a reading call: detach its reader; with ``session`` (a Generate call),
    stop that session's generation if it is not resumable. Holds both weakly."""
    session_ref = weakref.ref(session) if session is not None else None
    reader_ref = weakref.ref(reader)

    def ended(_context: Any) -> None:
        if (r := reader_ref()) is not None:
            r.close()
        s = session_ref() if session_ref is not None else None
        if s is not None and not s.resumable:
            s.cancel(Cancelled("the Generate call ended"))

    return ended
