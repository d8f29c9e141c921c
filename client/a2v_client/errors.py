"""The client's one exception, ``A2VClientError``, and the turning of gRPC failures into it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class A2VClientError(Exception):
    """A failed call: ``code`` is the gRPC status code name, ``message`` the server's text;
    ``retry_delay`` (seconds) when the server said when to try again."""

    def __init__(
        self,
        code: str,
        message: str,
        violations: list[tuple[str, str]] | None = None,
        retry_delay: float | None = None,
    ):
        self.code = code
        self.message = message
        self.violations = violations or []
        self.retry_delay = retry_delay
        super().__init__(f"{code}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> A2VClientError:
        violations = []
        retry_delay = None
        status = rpc_status.from_call(error)
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations += [(v.field, v.description) for v in bad.field_violations]
        return cls(error.code().name, error.details() or "", violations, retry_delay)


@contextmanager
def client_errors() -> Iterator[None]:
    """Raise a ``grpc.RpcError`` from the block as ``A2VClientError`` (works around ``await``
    too: the blocking and the asyncio client share it)."""
    try:
        yield
    except grpc.RpcError as error:
        raise A2VClientError.from_rpc_error(error) from None
