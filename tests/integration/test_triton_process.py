"""The Triton launcher on its own: instance overrides (how GPU placement is chosen), errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from media import ROOT

from a2v_server.errors import TritonStartError
from a2v_server.inference.triton_process import TritonProcess


def test_instance_group_override_is_applied():
    with TritonProcess(
        ROOT / "model_repository", ROOT / ".venv-triton", instance_kind="cpu", instance_count=1
    ) as triton:
        client = grpcclient.InferenceServerClient(triton.url)
        config = client.get_model_config("talking_avatar", as_json=True)["config"]
        assert config["instance_group"][0]["count"] == 1
        assert config["instance_group"][0]["kind"] == "KIND_CPU"
        assert client.is_model_ready("face_landmarks")
        client.close()
    assert not triton.running()
    triton.stop()  # idempotent


def test_gpu_config_is_generated_from_config_pbtxt():
    triton = TritonProcess(ROOT / "model_repository", ROOT / ".venv-triton", instance_kind="gpu")
    config = json.loads(triton.model_config_json("talking_avatar"))
    assert config["instance_group"][0]["kind"] == "KIND_GPU"
    assert config["model_transaction_policy"]["decoupled"] is True


def test_missing_environment_is_reported(tmp_path):
    with pytest.raises(TritonStartError, match="not a virtual environment"):
        TritonProcess(ROOT / "model_repository", tmp_path).start()


def _stub_environments(triton_pid: int) -> list[dict[str, str]]:
    """The environments of Triton's python-backend stubs (its child processes)."""
    found = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((child / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != triton_pid or "python_backend_stub" not in (child / "cmdline").read_text():
                continue
            pairs = (child / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # gone, or not ours to read
        found.append(dict(p.decode().split("=", 1) for p in pairs if b"=" in p))
    return found


def test_model_processes_run_their_libraries_single_threaded(monkeypatch):
    """OpenCV and BLAS get one thread in each model process (MODEL_THREAD_ENV); a value the
    operator set in Triton's environment is kept."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("OPENCV_FOR_THREADS_NUM", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with TritonProcess(
        ROOT / "model_repository", ROOT / ".venv-triton", models=("face_landmarks",)
    ) as triton:
        assert triton.pid is not None
        stubs = _stub_environments(triton.pid)
    assert stubs, "no python-backend stub found under Triton"
    for env in stubs:
        assert env.get("OPENCV_FOR_THREADS_NUM") == "1"
        assert env.get("OPENBLAS_NUM_THREADS") == "1"
        assert env.get("OMP_NUM_THREADS") == "3"
