"""The generated code matches protos/, and GenerateConfig validation names the field to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.rpc import code_pb2, error_details_pb2

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server.errors import InvalidInput, NotFound
from a2v_server.transport.config import spec_from_config
from a2v_server.transport.status import to_status

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "protos/a2v/v1/audio_to_video.proto"),
        ],
        check=True,
    )
    for name in ("audio_to_video_pb2.py", "audio_to_video_pb2.pyi", "audio_to_video_pb2_grpc.py"):
        fresh = (tmp_path / "a2v/v1" / name).read_text()
        assert fresh == (ROOT / "client/a2v/v1" / name).read_text(), f"run `make proto` ({name})"


def test_defaults():
    spec, model = spec_from_config(pb.GenerateConfig())
    assert model.name == "talking_avatar"
    # resolution unset: the model's default (720p for the avatar, the source's size for lipsync)
    assert (spec.fps, spec.short_side, spec.aspect, spec.fit) == (25.0, None, None, "crop")
    assert spec.size is None and not spec.source_size
    assert spec.seed > 0 and spec.request_id


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.GenerateConfig(output=pb.OutputOptions(fps=0.5)), "config.output.fps"),
        (pb.GenerateConfig(output=pb.OutputOptions(fps=float("nan"))), "config.output.fps"),
        (pb.GenerateConfig(output=pb.OutputOptions(aspect_ratio=42)), "config.output.aspect_ratio"),
        (pb.GenerateConfig(output=pb.OutputOptions(fit=9)), "config.output.fit"),
        (pb.GenerateConfig(output=pb.OutputOptions(video_codec=7)), "config.output.video_codec"),
        (pb.GenerateConfig(prompt="x" * 2001), "config.prompt"),
        (pb.GenerateConfig(trim=pb.AudioTrim(start_seconds=-1)), "config.trim.start_seconds"),
        (
            pb.GenerateConfig(trim=pb.AudioTrim(start_seconds=3, end_seconds=2)),
            "config.trim.end_seconds",
        ),
        (pb.GenerateConfig(request_id="a\nb"), "config.request_id"),
    ],
)
def test_bad_config_names_the_field(config, field):
    with pytest.raises(InvalidInput) as info:
        spec_from_config(config)
    assert info.value.field == field
    status = to_status(info.value)
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad) and bad.field_violations[0].field == field


def test_unknown_model_is_not_found():
    with pytest.raises(NotFound):
        spec_from_config(pb.GenerateConfig(model="unknown"))


def test_unexpected_exceptions_map_to_internal_without_leaking_text():
    status = to_status(RuntimeError("secret path /x/y"))
    assert status.code == code_pb2.INTERNAL and "/x/y" not in status.message
