"""The Triton launcher on its own: instance overrides (how GPU placement is chosen), errors."""

from __future__ import annotations

import json

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
