"""Channel interceptors that add metadata to every call, blocking and asyncio.

The API key (``connection.py``) and the trace context (``tracing.py``) both travel this way:
each gives an ``edit`` function that returns the call details with its metadata added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

#: ``ClientCallDetails`` in, the same details with more metadata out
Edit = Callable[[Any], Any]


def add_metadata(details: Any, pairs: list[tuple[str, str]]) -> Any:
    """``details`` with ``pairs`` appended to its metadata."""
    return details._replace(metadata=[*(details.metadata or ()), *pairs])


class MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Blocking channels (``grpc.intercept_channel``): ``edit`` applied to every call."""

    def __init__(self, edit: Edit) -> None:
        self._edit = edit

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._edit(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._edit(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._edit(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._edit(details), request_iterator)


# grpc.aio files an interceptor under the first kind it implements only: one class per kind.
# grpc.aio runs them in a task created at call time, which copies the caller's context.
class _AioEdit:
    def __init__(self, edit: Edit) -> None:
        self._edit = edit


class _AioUnaryUnary(_AioEdit, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._edit(details), request)


class _AioUnaryStream(_AioEdit, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._edit(details), request)


class _AioStreamUnary(_AioEdit, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._edit(details), request_iterator)


class _AioStreamStream(_AioEdit, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._edit(details), request_iterator)


def aio_metadata_interceptors(edit: Edit) -> list[grpc.aio.ClientInterceptor]:
    """asyncio channels: ``edit`` applied to every call, one interceptor per call kind."""
    return [
        kind(edit) for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    ]
