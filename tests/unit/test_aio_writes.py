"""client/a2v_client/aio_writes.py: a grpc.aio client still writing when the server refuses
the call gets the server's status, not INTERNAL "Internal error from Core" (grpc/grpc#36066).

A real grpc.aio server on a loopback port ends each stream-stream call at once with
RESOURCE_EXHAUSTED while its client writes 1 MiB messages as fast as it can; every call must
end with that status and its message. Without the fix, some calls of each batch lost it.
"""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import _call

import a2v_client.aio  # noqa: F401  (installs the fix)
from a2v_client import aio_writes

METHOD = "/test.Refuser/Refuse"


async def _refuse(requests, context):
    await context.send_initial_metadata(())  # headers first, as the a2v server sends them
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big: send less")


def test_the_fix_is_in_place_for_the_pinned_grpcio():
    assert grpc.__version__ == aio_writes.GRPCIO  # pyproject.toml's pin
    assert _call._StreamRequestMixin._write is aio_writes._write


async def test_a_refusal_during_writes_reaches_the_client_as_its_status():
    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(_refuse)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Refuser", {"Refuse": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            refuse = channel.stream_stream(METHOD)
            message = bytes(1 << 20)

            async def one() -> grpc.StatusCode:
                async def requests():
                    for _ in range(64):
                        yield message

                call = refuse(requests())
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call:
                        pass
                if info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert info.value.details() == "too big: send less"
                return info.value.code()

            codes = [await one() for _ in range(40)]
    finally:
        await server.stop(None)
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == len(codes), codes
