"""Service tier: the real grpc.aio server (``a2v_server.main.create_server``) started in the
test process, with FakeBackend (fake_backend.py) in place of Triton.

``serve`` is the one way tests start a server: ``async with serve(settings, backend) as
service`` for tests that need their own Settings (API keys, TLS, limits) or backend;
``service`` and ``client`` are a default server and an AsyncClient on it, per test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fake_backend import FakeBackend

from a2v_client import AsyncClient
from a2v_server.main import create_server
from a2v_server.settings import Settings

#: loopback, any free port: what every default-settings server here listens on
LOOPBACK = "127.0.0.1:0"


@dataclass(frozen=True)
class Service:
    """A started server: its port and the fake backend behind it."""

    port: int
    backend: FakeBackend

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def _serve(
    settings: Settings | None = None, backend: FakeBackend | None = None
) -> AsyncIterator[Service]:
    backend = backend if backend is not None else FakeBackend()
    server, port, watcher, _ = create_server(settings or Settings(listen=LOOPBACK), backend)
    await server.start()
    try:
        await watcher.check_once()  # health: SERVING (the fake backend is always ready)
        yield Service(port, backend)
    finally:
        await server.stop(None)


@pytest.fixture
def serve():
    """The server factory: ``async with serve(Settings(...), backend) as service: ...``."""
    return _serve


@pytest.fixture
async def service(serve) -> AsyncIterator[Service]:
    """A server with the default settings on a loopback port; a fresh FakeBackend."""
    async with serve() as running:
        yield running


@pytest.fixture
async def client(service) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(service.address, timeout=60) as c:
        yield c
