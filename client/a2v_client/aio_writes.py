"""A server's status, kept when a grpc.aio write races the end of the call.

When a server ends a client-streaming call early (it refused the input) while the client is
still writing, grpc.aio's ``_StreamRequestMixin._write`` sees the write fail and calls
``set_internal_error`` unconditionally: if the server's status had already arrived, it is
replaced, and the caller gets INTERNAL "Internal error from Core" instead of, say,
RESOURCE_EXHAUSTED and the message that says what to fix (grpc/grpc#36066; the upstream fix,
grpc/grpc#43486, is not released). The client waits for the server's headers before writing
and stops writing once the call is done, and the server reads what is still coming for a
second before it fails a call (transport/status.drain); the race is still there for a write
already on its way, and under load it was lost about one time in three (a 4K lipsync refused
at once, with two busy loops on the 2 cores: INTERNAL in 4 of 12 runs).

``install()`` gives grpc.aio the upstream fix's behaviour: a failed write waits (up to
STATUS_WAIT) for the status the server sent, and only without one reports INTERNAL, as before
(where Core delivers no status, the wait ends). It replaces ``_StreamRequestMixin._write``,
grpc.aio's private method, for the whole process (the client's calls go through interceptors,
so the call objects that write are made inside grpc.aio, out of reach one by one), and only
for the grpcio version it was written against (pyproject.toml pins it): any other version is
left as it is. Measured with the 4K refusal above under the same load: 16 of 16 runs gave
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc import _common
from grpc._cython import cygrpc
from grpc.aio import _call

#: how long a failed write waits for the server's status before reporting INTERNAL
STATUS_WAIT = 5.0


#: the grpcio whose ``_StreamRequestMixin._write`` ``_write`` is a copy of
GRPCIO = "1.85.3"


def install() -> bool:
    """Put ``_write`` in place (once; only on GRPCIO); whether it is in place."""
    if grpc.__version__ != GRPCIO:
        return False
    _call._StreamRequestMixin._write = _write  # type: ignore[method-assign]
    return True


async def _write(self: Any, request: Any) -> None:
    """grpc.aio's ``_StreamRequestMixin._write`` (grpcio 1.85.3), but for a failed send."""
    if self.done():
        raise asyncio.InvalidStateError(_call._RPC_ALREADY_FINISHED_DETAILS)
    if self._done_writing_flag:
        raise asyncio.InvalidStateError(_call._RPC_HALF_CLOSED_DETAILS)
    if not self._metadata_sent.is_set():
        await self._metadata_sent.wait()
        if self.done():
            await self._raise_for_status()
    serialized = _common.serialize(request, self._request_serializer)
    try:
        await self._cython_call.send_serialized_message(serialized)
    except cygrpc.InternalError as err:
        try:  # the server ended the call: its status is on its way, or here already
            async with asyncio.timeout(STATUS_WAIT):
                await self._cython_call.status()
        except TimeoutError:  # none came: grpc.aio's own answer
            self._cython_call.set_internal_error(str(err))
        await self._raise_for_status()
    except asyncio.CancelledError:
        if not self.cancelled():
            self.cancel()
        raise
