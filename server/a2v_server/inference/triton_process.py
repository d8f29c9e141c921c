"""Start and stop a real Triton Inference Server process without containers.

The server binary, its python backend and its shared libraries come from the PyPI wheel
``nvidia-pytriton`` installed in the *model environment* (a virtualenv holding the model's own
packages, see model_repository/requirements.txt). The python backend's stub runs model.py with
that environment's interpreter and site-packages because the environment's ``bin/`` leads PATH
and VIRTUAL_ENV is set (README, "Two environments").
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO

import tritonclient.grpc as grpcclient
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from a2v_server.catalog import TRITON_MODELS
from a2v_server.errors import TritonStartError

log = logging.getLogger(__name__)

#: where the python backend keeps its shared-memory regions (POSIX shm on Linux)
SHM_DIR = Path("/dev/shm")

#: Each model instance is one process serving one stream at a time: Triton's instance count is
#: the models' parallelism. The libraries' own worker pools only add spinning: after each short
#: job OpenCV's parallel_for workers and OpenBLAS's threads wait actively (sched_yield) on the
#: cores that the other instances, Triton and the a2v server need. Measured on 2 cores (lipsync
#: at 512x512, one 10 s clip): the lipsync stub's CPU 1.80 -> 1.61 s run alone, and perf saw
#: 0.17 s of sched_yield per stub per clip in a whole-stack run. MediaPipe's own inference
#: threads are kept. An operator's own values win (set them in Triton's environment).
MODEL_THREAD_ENV = {
    "OPENCV_FOR_THREADS_NUM": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _site_packages(env: Path) -> Path:
    found = sorted(env.glob("lib/python3.*/site-packages"))
    if not found:
        raise TritonStartError(
            f"{env} is not a virtual environment (no lib/python3.*/site-packages)"
        )
    return found[0]


class TritonProcess:
    """A tritonserver child process on loopback ports.

    A context manager; ``stop()`` is idempotent.
    """

    def __init__(
        self,
        model_repository: str | Path,
        env: str | Path,
        *,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        models: tuple[str, ...] = TRITON_MODELS,
        log_path: str | Path | None = None,
        instance_kind: str = "",
        instance_count: int = 0,
        trace_url: str = "",
        trace_rate: int = 1,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.env = Path(env).resolve()
        self.host = host
        self.grpc_port = grpc_port or free_port(host)
        self.models = models
        self.log_path = Path(log_path) if log_path else None
        if instance_kind not in ("", "cpu", "gpu"):
            raise ValueError(f"instance_kind must be cpu, gpu or empty, not {instance_kind!r}")
        #: override of the models' instance_group ("" / 0 = as written in config.pbtxt)
        self.instance_kind = instance_kind
        self.instance_count = instance_count
        #: OTLP/HTTP endpoint for Triton's own OpenTelemetry traces ("" = no tracing)
        self.trace_url = trace_url
        self.trace_rate = trace_rate
        self._proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log_file: BinaryIO | None = None
        self._log_path: Path | None = None
        #: names of this process's python-backend shared-memory regions (one per model
        #: instance, 1 MiB and growing), so stop() can remove what a killed Triton left behind
        self.shm_prefix = ""

    @property
    def url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def _command_and_env(self) -> tuple[list[str], dict[str, str]]:
        site = _site_packages(self.env)
        root = site / "pytriton" / "tritonserver"
        binary = root / "bin" / "tritonserver"
        if not binary.exists():
            raise TritonStartError(
                f"no tritonserver in {self.env}: install model_repository/"
                "requirements-triton-server.txt there (make venv does)"
            )
        version = site.parent.name.removeprefix("python")  # e.g. "3.11"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        # Triton wants backends/<name>/ with libtriton_python.so and the stub side by side.
        assert self._workdir is not None
        backend_dir = self._workdir / "backends"
        shutil.copytree(
            root / "backends" / "python",
            backend_dir / "python",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy2(stub, backend_dir / "python" / "triton_python_backend_stub")
        env = dict(os.environ)
        env["PATH"] = f"{self.env / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.env)
        libs = site / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(libs), env.get("LD_LIBRARY_PATH", "")])
        )
        env.pop("PYTHONPATH", None)  # the model must not see the server's packages
        for name, value in MODEL_THREAD_ENV.items():
            env.setdefault(name, value)
        http_port, metrics_port = free_port(self.host), free_port(self.host)
        command = [
            str(binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            "--model-control-mode=explicit",
            *([] if self._overrides() else [f"--load-model={m}" for m in self.models]),
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={metrics_port}",
            "--exit-timeout-secs=10",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-verbose=0",
            *self._trace_args(),
        ]
        return command, env

    def _trace_args(self) -> list[str]:
        """Triton's OpenTelemetry tracing: its spans join the a2v server's traces because the
        server sends ``traceparent`` with every request (inference.py)."""
        if not self.trace_url:
            return []
        return [
            "--trace-config=mode=opentelemetry",
            f"--trace-config=opentelemetry,url={self.trace_url}",
            "--trace-config=opentelemetry,resource=service.name=triton",
            f"--trace-config=rate={self.trace_rate}",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config=count=-1",
        ]

    def _overrides(self) -> bool:
        return bool(self.instance_kind or self.instance_count)

    def model_config_json(self, model: str) -> str:
        """config.pbtxt of ``model`` with the instance_group override applied, as JSON."""
        text = (self.model_repository / model / "config.pbtxt").read_text()
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        for group in config.instance_group:
            if self.instance_kind:
                group.kind = (
                    model_config_pb2.ModelInstanceGroup.KIND_GPU
                    if self.instance_kind == "gpu"
                    else model_config_pb2.ModelInstanceGroup.KIND_CPU
                )
            if self.instance_count:
                group.count = self.instance_count
        return json_format.MessageToJson(config, preserving_proto_field_name=True)

    def _load_with_overrides(self, client: grpcclient.InferenceServerClient) -> None:
        for model in self.models:
            client.load_model(model, config=self.model_config_json(model))

    def start(self, timeout: float = 120.0) -> TritonProcess:
        if self._proc is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="a2v-triton-"))
        self.shm_prefix = f"a2v_triton_{uuid.uuid4().hex[:16]}_"
        try:
            command, env = self._command_and_env()
        except BaseException:
            self.stop()
            raise
        log_path = self.log_path or self._workdir / "triton.log"
        # append: a restart keeps the history; closed in stop()
        self._log_file = open(log_path, "ab")  # noqa: SIM115
        self._log_path = log_path
        log.info("starting Triton on %s (log: %s)", self.url, log_path)
        self._proc = subprocess.Popen(
            command,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is handled by us, not delivered to Triton too
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        client = grpcclient.InferenceServerClient(self.url)
        deadline = time.monotonic() + timeout
        loaded = not self._overrides()
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise TritonStartError(f"Triton exited during start-up:\n{self.log_tail()}")
                if not loaded:
                    try:
                        live = client.is_server_live()
                    except Exception:  # not listening yet
                        live = False
                    if live:
                        try:
                            self._load_with_overrides(client)
                        except Exception as exc:
                            raise TritonStartError(
                                f"loading the models failed: {exc}\n{self.log_tail()}"
                            ) from exc
                        loaded = True
                    time.sleep(0.25)
                    continue
                try:
                    if client.is_server_ready() and all(
                        client.is_model_ready(m) for m in self.models
                    ):
                        log.info("Triton ready on %s", self.url)
                        return
                except Exception:  # not listening yet
                    pass
                time.sleep(0.25)
            raise TritonStartError(f"Triton not ready after {timeout:g} s:\n{self.log_tail()}")
        finally:
            client.close()

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None:
            return "(no log)"
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def restart(self, timeout: float = 120.0) -> TritonProcess:
        """Stop whatever is left of the process and start a new one on the same ports."""
        self.stop()
        return self.start(timeout)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The tritonserver process (its model stubs are its children), while it runs."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 20.0, *, graceful: bool = True) -> None:
        """SIGTERM, wait, then SIGKILL; ``graceful=False``: SIGKILL at once (a test's
        teardown: Triton's own shutdown takes ~1.2 s per model instance, one after another,
        5 s with the talking avatar's four). Either way the model stubs go too, and the
        shared-memory regions a killed Triton leaves behind are removed. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None and graceful:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("Triton did not stop in %g s: killing it", timeout)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc is not None:
            # Python backend stubs left behind by a Triton that crashed or was killed share
            # its process group (start_new_session): take them down too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._remove_shm_regions()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._workdir is not None and self.log_path is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        elif self._workdir is not None:
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)
        self._workdir = None

    def _remove_shm_regions(self) -> None:
        # A Triton stopped by SIGTERM unlinks its regions; a killed or crashed one (and its
        # stubs) cannot, and each region is RAM (tmpfs) until the machine restarts: measured
        # here, 656 regions and 1.3 GB left by earlier test runs that killed Tritons.
        if not self.shm_prefix or not SHM_DIR.is_dir():
            return
        for region in SHM_DIR.glob(f"{self.shm_prefix}*"):
            try:
                region.unlink()
            except OSError:
                pass

    def __enter__(self) -> TritonProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
