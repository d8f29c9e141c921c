"""A server that restarts on the same address: a new client reaches the new server at once,
whatever clients of the old one still live. gRPC shares a process's connections to one
address between channels; the client keeps its own (CHANNEL_OPTIONS), so it does not inherit
a dead connection's "connection refused" and its reconnect backoff (up to 2 minutes)."""

from __future__ import annotations

import asyncio

import pytest

from a2v_client import A2VClientError, AsyncClient, Client
from a2v_server.settings import Settings


async def test_a_new_asyncio_client_reaches_a_server_restarted_on_the_same_port(serve):
    async with serve() as first:
        port = first.port
        old = AsyncClient(first.address, timeout=10)
        await old.__aenter__()
        assert await old.health() == "SERVING"
    try:
        with pytest.raises(A2VClientError):  # the old connection knows the server went away
            await old.health()
        async with serve(Settings(listen=f"127.0.0.1:{port}")) as second:
            assert second.port == port
            async with AsyncClient(second.address, timeout=10) as new:
                assert await new.health() == "SERVING"
                assert [m.name for m in await new.list_models()]
    finally:
        await old.__aexit__(None, None, None)


async def test_a_new_blocking_client_reaches_a_server_restarted_on_the_same_port(serve):
    async with serve() as first:
        port = first.port
        old = Client(first.address, timeout=10)
        assert await asyncio.to_thread(old.health) == "SERVING"
    try:
        with pytest.raises(A2VClientError):
            await asyncio.to_thread(old.health)
        async with serve(Settings(listen=f"127.0.0.1:{port}")) as second:

            def fresh() -> str:
                with Client(second.address, timeout=10) as new:
                    return new.health()

            assert await asyncio.to_thread(fresh) == "SERVING"
    finally:
        old.close()
