"""A loopback cluster: several Triton processes and several a2v-server replicas, every one a
real process on a free loopback port, as a Kubernetes deployment runs them.

The replicas share one resume key (a file here, a Secret there), so a session started on one
can be resumed or cancelled through any other. Every replica knows every Triton and places each
new generation on the healthy one with the fewest open sequences (inference/pool.py).

``python -m devstack.cluster`` (``make cluster``, SERVERS=3 TRITONS=2) starts one, prints the
client target (``ipv4:127.0.0.1:P1,127.0.0.1:P2,...``: the client balances over the replicas)
and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from a2v_server.inference.triton_process import TritonProcess, free_port
from devstack.stack import start_server, stop_server, wait_serving


class LocalCluster:
    """Context manager: ``with LocalCluster(root, servers=3, tritons=2) as c: c.target``."""

    def __init__(
        self,
        root: str | Path,
        *,
        servers: int = 3,
        tritons: int = 2,
        log_dir: str | Path | None = None,
        server_env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self._work = tempfile.TemporaryDirectory(prefix="a2v-cluster-")
        self.log_dir = Path(log_dir) if log_dir else Path(self._work.name)
        self.key_file = Path(self._work.name) / "resume.key"
        self.key_file.write_text(secrets.token_urlsafe(48))
        self.tritons = [
            TritonProcess(
                self.root / "model_repository",
                self.root / ".venv-triton",
                log_path=self.log_dir / f"triton-{i}.log",
            )
            for i in range(tritons)
        ]
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in range(servers)]
        #: each replica's Prometheus /metrics port
        self.metrics_ports = [free_port() for _ in range(servers)]
        self._server_env = server_env or {}
        self._servers: list[subprocess.Popen | None] = [None] * servers
        self._logs: list[BinaryIO | None] = [None] * servers

    @property
    def target(self) -> str:
        """The client target that balances over every replica."""
        return "ipv4:" + ",".join(self.addresses)

    @property
    def triton_urls(self) -> str:
        """What every replica is given as A2V_TRITON_URL: all the Tritons."""
        return ",".join(t.url for t in self.tritons)

    def start(self, timeout: float = 180.0) -> LocalCluster:
        try:
            starting = [threading.Thread(target=t.start, args=(timeout,)) for t in self.tritons]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join()
            for t in self.tritons:
                if not t.running():
                    raise RuntimeError(f"Triton did not start: see {self.log_dir}")
            for i in range(len(self.addresses)):
                self.start_server(i)
            for i, address in enumerate(self.addresses):
                wait_serving(self._servers[i], address, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_server(self, i: int, env: dict[str, str] | None = None) -> None:
        """(Re)start replica ``i`` on its address."""
        env = {
            **os.environ,
            "A2V_METRICS_LISTEN": f"127.0.0.1:{self.metrics_ports[i]}",
            "A2V_RESUME_KEY_FILE": str(self.key_file),
            **self._server_env,
            **(env or {}),
        }
        if self._logs[i] is None:
            self._logs[i] = open(self.log_dir / f"server-{i}.log", "ab")  # noqa: SIM115
        self._servers[i] = start_server(self.addresses[i], self.triton_urls, env, self._logs[i])

    def wait_serving(self, i: int, timeout: float = 60.0) -> None:
        wait_serving(self._servers[i], self.addresses[i], timeout)

    def server(self, i: int) -> subprocess.Popen | None:
        return self._servers[i]

    def stop_server(self, i: int, grace: float = 30.0) -> None:
        server, self._servers[i] = self._servers[i], None
        stop_server(server, grace)

    def stop(self, *, graceful: bool = True) -> None:
        """Every replica drains and stops, then every Triton, side by side (each takes ~5 s
        to unload its models); ``graceful=False`` kills the Tritons (TritonProcess.stop)."""
        for i in range(len(self._servers)):
            self.stop_server(i)
        for log in self._logs:
            if log is not None:
                log.close()
        self._logs = [None] * len(self._logs)
        stopping = [
            threading.Thread(target=t.stop, kwargs={"graceful": graceful}) for t in self.tritons
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._work.cleanup()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=int(os.environ.get("SERVERS", 3)))
    parser.add_argument("--tritons", type=int, default=int(os.environ.get("TRITONS", 2)))
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with LocalCluster(root, servers=args.servers, tritons=args.tritons) as cluster:
        print(
            f"a2v cluster: {args.servers} servers, {args.tritons} Tritons; logs in "
            f"{cluster.log_dir}\nclient target: {cluster.target}\n"
            f"try: .venv/bin/a2v --server {cluster.target} generate --audio "
            "samples/speech.ogg --image samples/portrait.jpg -o out/cluster.mp4\n"
            "Ctrl-C stops everything",
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
