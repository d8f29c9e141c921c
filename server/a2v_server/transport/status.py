"""The one way a domain error becomes a gRPC status (with BadRequest details)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from a2v_server.errors import A2VError


def to_status(exc: BaseException) -> status_pb2.Status:
    """The status for ``exc``: its code and message for a domain error, with the field it is
    about as a BadRequest detail; INTERNAL for anything else (a bug)."""
    if isinstance(exc, A2VError):
        code = getattr(code_pb2, exc.status_name)
        status = status_pb2.Status(code=code, message=exc.message)
        if exc.field and exc.status_name == "INVALID_ARGUMENT":
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=exc.field, description=exc.message
                        )
                    ]
                )
            )
            status.details.append(detail)
        return status
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error in the a2v server (this is a bug; it was "
        "logged with the request id)",
    )


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status of ``exc`` (raises, as ``context.abort`` does)."""
    await context.abort_with_status(rpc_status.to_status(to_status(exc)))
    raise AssertionError("abort_with_status returned")  # it always raises


async def drain(requests: AsyncIterator[Any], seconds: float = 1.0) -> None:
    """Read what the client is still sending, briefly, before failing the call.

    A grpc.aio client whose write races the server's error status reports INTERNAL instead of
    that status (grpc/grpc#36066). Taking the client's remaining messages for up to a second
    lets it half-close normally and see the real status; a client that keeps sending longer
    gets the status anyway.
    """
    try:
        async with asyncio.timeout(seconds):
            async for _ in requests:
                pass
    except (TimeoutError, grpc.RpcError, StopAsyncIteration):
        pass
    except Exception:  # the stream is broken: nothing more to read
        pass
