"""Domain errors of the a2v server.

Every layer below the gRPC servicer raises these (never grpc types); the transport maps them
to status codes in one place (``a2v_server.transport.status.abort_with``). An exception that is
not an ``A2VError`` reaching the servicer is a bug and is reported as INTERNAL.
"""

from __future__ import annotations


class A2VError(Exception):
    """Base class (not raised itself): ``message`` is shown to the caller and must say what
    to fix."""

    #: name of the grpc.StatusCode member this error maps to
    status_name = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: request field the error is about (reported as a BadRequest field violation)
        self.field = field


class InvalidInput(A2VError):
    """The request itself is wrong: bad config value, undecodable media, no face, ..."""

    status_name = "INVALID_ARGUMENT"


class FailedPrecondition(A2VError):
    """The request is well-formed but arrived in a state that cannot serve it (message order)."""

    status_name = "FAILED_PRECONDITION"


class ResourceExhausted(A2VError):
    """A configured limit was exceeded (input bytes, duration, pixels)."""

    status_name = "RESOURCE_EXHAUSTED"


class NotFound(A2VError):
    """An unknown model name."""

    status_name = "NOT_FOUND"


class Unavailable(A2VError):
    """The inference backend (Triton) is down or not ready; the caller may retry."""

    status_name = "UNAVAILABLE"


class DeadlineExceeded(A2VError):
    """The work did not finish within the time the caller or the server allowed."""

    status_name = "DEADLINE_EXCEEDED"


class OutOfRange(A2VError):
    """A position the caller asked for is outside what exists."""

    status_name = "OUT_OF_RANGE"


class ResumeTooLate(OutOfRange):
    """The chunks after the client's last one are no longer retained."""


class ModelFault(A2VError):
    """The model broke its own contract (skipped or repeated frames, failed internally): a bug
    on the model's side, reported as INTERNAL with what went wrong."""

    status_name = "INTERNAL"


class DecodeCancelled(Exception):
    """Not an error: ends a decoder thread whose generation was cancelled."""


class TritonStartError(RuntimeError):
    """The launched Triton did not come up (a start-up failure of the server, not a request's);
    the message carries the end of Triton's log."""


def without_traceback(exc: BaseException) -> BaseException:
    """``exc`` with the tracebacks of it and its causes dropped, for keeping past its handler.

    A kept exception's traceback refers to the frames it passed through, and they to the
    object that keeps it: a reference cycle, which holds a whole finished generation (its
    buffers, and the threads of its codecs) until the garbage collector's next full pass.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        e = pending.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        pending += [c for c in (e.__cause__, e.__context__) if c is not None]
        if isinstance(e, BaseExceptionGroup):
            pending += list(e.exceptions)
    return exc


def root_cause(group: BaseExceptionGroup) -> BaseException:
    """The error that ended a task group: a domain error before the cancellations it caused."""
    flat: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            flat.append(e)

    walk(group)
    return next((e for e in flat if isinstance(e, A2VError)), flat[0])
