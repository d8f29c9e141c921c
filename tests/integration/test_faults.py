"""Faults: Triton dies mid-stream. The stream ends UNAVAILABLE with only whole fragments sent,
health goes NOT_SERVING, the server restarts Triton by itself, and new requests succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import generate_all, start_server
from media import PORTRAIT, ROOT

from a2v_client import A2VClientError, Client, GenerateOptions, pcm_audio, realtime


def _children(pid: int) -> list[int]:
    """Live (not zombie) tritonserver children of ``pid``."""
    out = subprocess.run(
        ["ps", "-o", "pid=,ppid=,stat=,comm=", "-A"], capture_output=True, text=True
    )
    rows = [line.split() for line in out.stdout.splitlines()]
    return [
        int(r[0]) for r in rows if int(r[1]) == pid and "tritonserver" in r[3] and "Z" not in r[2]
    ]


def _wait_health(client: Client, wanted: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.health() == wanted:
                return True
        except A2VClientError:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture
def supervised(tmp_path):
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server, address = start_server(
        "--launch-triton", cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    client = Client(address, timeout=120)
    try:
        assert _wait_health(client, "SERVING", 120), (tmp_path / "server.log").read_text()
        yield server, client
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_triton_killed_mid_stream(supervised):
    server, client = supervised
    # 20 s of live audio paced in real time: the stream is still running when Triton dies.
    pcm = (np.sin(np.arange(16000 * 20) / 16000 * 2 * np.pi * 220) * 8000).astype("<i2")
    pieces = [pcm[i : i + 1600].tobytes() for i in range(0, len(pcm), 1600)]
    chunks, error = [], []

    def run() -> None:
        try:
            for r in client.generate(
                audio=realtime(pcm_audio(pieces, 16000, 1), 0.1),
                image=PORTRAIT,
                options=GenerateOptions(resolution="256x256"),
            ):
                if r.HasField("chunk"):
                    chunks.append(r.chunk)
        except A2VClientError as exc:
            error.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(chunks) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(chunks) >= 3, "the stream never started"
    (triton_pid,) = _children(server.pid)
    regions = _shm_regions(triton_pid)
    assert regions, "the python backend's shared-memory regions were not found"
    os.kill(triton_pid, signal.SIGKILL)
    worker.join(60)
    assert not worker.is_alive()
    assert error and error[0].code == "UNAVAILABLE", error
    # what was sent is whole: init + complete fragments, numbered without gaps
    assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
    data = b"".join(c.data for c in chunks)
    pos = 0
    while pos < len(data):  # every top-level MP4 box is complete
        size = int.from_bytes(data[pos : pos + 4], "big")
        assert size >= 8 and pos + size <= len(data)
        pos += size
    assert pos == len(data)

    # health goes NOT_SERVING, the server restarts Triton by itself, health comes back
    assert _wait_health(client, "NOT_SERVING", 30)
    assert _wait_health(client, "SERVING", 120)
    assert _children(server.pid) != [triton_pid]
    # the killed Triton could not remove its shared memory (RAM until a reboot); the restart did
    assert not [r for r in regions if r.exists()]
    responses = generate_all(client, resolution="256x256")
    assert responses[-1].HasField("summary")


def _shm_regions(triton_pid: int) -> list[Path]:
    """The shared-memory regions of a running Triton's python backend, by the name prefix its
    command line gives them."""
    args = Path(f"/proc/{triton_pid}/cmdline").read_bytes().decode().split("\0")
    option = "--backend-config=python,shm-region-prefix-name="
    (prefix,) = [a.removeprefix(option) for a in args if a.startswith(option)]
    return sorted(Path("/dev/shm").glob(f"{prefix}*"))


def test_unreachable_triton_is_unavailable():
    server, address = start_server()
    try:
        with Client(address, timeout=60) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    client.health()
                    break
                except A2VClientError:
                    time.sleep(0.2)
            with pytest.raises(A2VClientError) as info:
                generate_all(client)
            assert info.value.code == "UNAVAILABLE"
            assert client.health() == "NOT_SERVING"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def test_deadline_is_honoured_and_frees_the_model(stack, client):
    with Client(stack.address, timeout=0.8) as hurried, pytest.raises(A2VClientError) as info:
        generate_all(hurried, resolution="720p")
    assert info.value.code == "DEADLINE_EXCEEDED"
    # the model instance was released: full renders still go through at once
    for _ in range(5):
        responses = generate_all(client, resolution="256x256")
        assert responses[-1].HasField("summary")
