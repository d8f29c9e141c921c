"""The whole stack on loopback: a Triton process plus an a2v-server process.

Used by ``make demo``, the integration tests and the benchmarks. Every port is a free loopback
port, so several stacks can run side by side.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from a2v_server.inference.triton_process import TritonProcess, free_port

log = logging.getLogger(__name__)


class LocalStack:
    """Context manager: ``with LocalStack(root) as stack: stack.address``. stop() is idempotent."""

    def __init__(
        self,
        root: str | Path,
        *,
        triton_env: str | Path | None = None,
        log_dir: str | Path | None = None,
        server_env: dict[str, str] | None = None,
    ):
        self.root = Path(root)
        self.triton = TritonProcess(
            self.root / "model_repository",
            triton_env or self.root / ".venv-triton",
            log_path=Path(log_dir) / "triton.log" if log_dir else None,
        )
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        #: the server's Prometheus endpoint: a free port too, so stacks do not collide
        self.metrics_port = free_port()
        self.log_dir = Path(log_dir) if log_dir else None
        self._server_env = server_env or {}
        self._server: subprocess.Popen | None = None
        self._server_log: BinaryIO | None = None

    def start(self, timeout: float = 120.0) -> LocalStack:
        self.triton.start(timeout)
        env = {
            **os.environ,
            "A2V_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **self._server_env,
        }
        if self.log_dir is not None:
            self._server_log = open(self.log_dir / "server.log", "wb")  # noqa: SIM115
        self._server = start_server(self.address, self.triton.url, env, self._server_log)
        try:
            self.wait_serving(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def server_pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    def wait_serving(self, timeout: float = 60.0) -> None:
        wait_serving(self._server, self.address, timeout)

    def stop(self, *, graceful: bool = True) -> None:
        """The server drains and stops (SIGTERM); then Triton stops, or with
        ``graceful=False`` is killed (TritonProcess.stop: a test's teardown)."""
        server, self._server = self._server, None
        stop_server(server)
        if self._server_log is not None:
            self._server_log.close()
            self._server_log = None
        self.triton.stop(graceful=graceful)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(
    address: str, triton_url: str, env: dict[str, str], log: BinaryIO | None
) -> subprocess.Popen:
    """An a2v-server process listening on ``address``, using the Triton at ``triton_url``."""
    return subprocess.Popen(
        [sys.executable, "-m", "a2v_server.main", "--listen", address, "--triton-url", triton_url],
        env=env,
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def wait_serving(server: subprocess.Popen | None, address: str, timeout: float = 60.0) -> None:
    """Until the server at ``address`` reports SERVING (RuntimeError if it exits first)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server is None or server.poll() is not None:
                raise RuntimeError("a2v-server exited during start-up")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"a2v-server not SERVING after {timeout:g} s")


def stop_server(server: subprocess.Popen | None, grace: float = 30.0) -> None:
    """SIGTERM (the server drains its streams), then SIGKILL after ``grace`` seconds."""
    if server is not None and server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(grace)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
