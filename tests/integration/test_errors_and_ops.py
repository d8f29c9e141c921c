"""Bad input gets the right status and the server stays healthy; the operational surface works
(health, models, reflection, CLI, tracing, graceful shutdown)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from helpers import a2v_command, generate_all, generate_args, start_server
from media import PORTRAIT, SPEECH, no_face_png, probe

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import A2VClientError, bytes_audio


def _call(stack, requests: list[pb.GenerateRequest]) -> grpc.RpcError:
    with grpc.insecure_channel(stack.address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Generate(iter(requests), timeout=60))
    return info.value


def _config() -> pb.GenerateRequest:
    return pb.GenerateRequest(
        config=pb.GenerateConfig(
            output=pb.OutputOptions(resolution=pb.Resolution(size=pb.Size(width=256, height=256)))
        )
    )


def _image() -> pb.GenerateRequest:
    return pb.GenerateRequest(image=pb.ImageInput(data=PORTRAIT.read_bytes()))


def _audio() -> pb.GenerateRequest:
    return pb.GenerateRequest(audio=pb.AudioChunk(encoded=SPEECH.read_bytes()))


END = pb.GenerateRequest(end=pb.EndOfInput())


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("audio_first", grpc.StatusCode.INVALID_ARGUMENT, "first message must be a config"),
        ("empty_first", grpc.StatusCode.INVALID_ARGUMENT, "first message must be a config"),
        ("missing_portrait", grpc.StatusCode.INVALID_ARGUMENT, "portrait is missing"),
        ("undecodable_audio", grpc.StatusCode.INVALID_ARGUMENT, "audio"),
        ("no_face", grpc.StatusCode.INVALID_ARGUMENT, "no face"),
        ("not_an_image", grpc.StatusCode.INVALID_ARGUMENT, "PNG"),
        ("bad_fps", grpc.StatusCode.INVALID_ARGUMENT, "fps"),
        ("unknown_model", grpc.StatusCode.NOT_FOUND, "unknown model"),
        ("second_config", grpc.StatusCode.FAILED_PRECONDITION, "config"),
        ("no_end", grpc.StatusCode.INVALID_ARGUMENT, "end message"),
        ("video_for_avatar", grpc.StatusCode.INVALID_ARGUMENT, "still image"),
    ],
)
def test_bad_input_gets_a_clear_status(stack, client, tmp_path, case, code, words):
    config = _config()
    requests = {
        "audio_first": [_audio(), _image(), END],
        "empty_first": [pb.GenerateRequest(), _image(), _audio(), END],
        "missing_portrait": [config, _audio(), END],
        "undecodable_audio": [
            config,
            _image(),
            pb.GenerateRequest(audio=pb.AudioChunk(encoded=os.urandom(4000))),
            END,
        ],
        "no_face": [
            config,
            pb.GenerateRequest(
                image=pb.ImageInput(data=no_face_png(tmp_path / "landscape.png").read_bytes())
            ),
            _audio(),
            END,
        ],
        "not_an_image": [
            config,
            pb.GenerateRequest(image=pb.ImageInput(data=b"GIF89a" * 50)),
            _audio(),
            END,
        ],
        "bad_fps": [
            pb.GenerateRequest(config=pb.GenerateConfig(output=pb.OutputOptions(fps=500))),
            _image(),
            _audio(),
            END,
        ],
        "unknown_model": [
            pb.GenerateRequest(config=pb.GenerateConfig(model="nope")),
            _image(),
            _audio(),
            END,
        ],
        "second_config": [config, _image(), config, _audio(), END],
        "no_end": [config, _image(), _audio()],
        "video_for_avatar": [
            config,
            pb.GenerateRequest(video=pb.VideoInput(data=b"\0" * 64)),
            _audio(),
            END,
        ],
    }[case]
    error = _call(stack, requests)
    assert error.code() == code, error.details()
    assert words.lower() in error.details().lower()
    assert client.health() == "SERVING"


def test_invalid_argument_carries_field_violations(client):
    with pytest.raises(A2VClientError) as info:
        generate_all(client, resolution="333x200")
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.violations[0][0] == "config.output.resolution.size"


def test_server_survives_bad_requests_and_still_renders(client, tmp_path):
    for _ in range(3):
        with pytest.raises(A2VClientError):
            list(client.generate(audio=bytes_audio(b"not audio" * 100), image=PORTRAIT))
    responses = generate_all(client, resolution="256x256")
    assert responses[-1].HasField("summary")


def test_models_health_and_reflection(stack, client):
    models = client.list_models()
    assert [m.name for m in models] == ["talking_avatar", "lipsync"]
    assert all(m.ready for m in models)
    assert 0 < models[0].lookahead_seconds <= 0.25 and 0 < models[1].lookahead_seconds <= 0.1
    lipsync = models[1]
    assert set(lipsync.accepted_inputs) == {pb.INPUT_KIND_AUDIO, pb.INPUT_KIND_VIDEO}
    m = models[0]
    assert m.ready and m.native_fps == 25
    assert set(m.accepted_inputs) == {pb.INPUT_KIND_AUDIO, pb.INPUT_KIND_IMAGE}
    assert client.get_model("talking_avatar").name == "talking_avatar"
    with pytest.raises(A2VClientError) as info:
        client.get_model("missing")
    assert info.value.code == "NOT_FOUND"
    assert client.health("a2v.v1.AudioToVideo") == "SERVING"

    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(stack.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        )
        names = {s.name for s in reply.list_services_response.service}
    assert {"a2v.v1.AudioToVideo", "grpc.health.v1.Health"} <= names


def _a2v(stack, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        a2v_command(stack.address, *args),
        capture_output=True,
        timeout=300,
        **kwargs,
    )


def test_cli_generate_models_health(stack, tmp_path):
    out = tmp_path / "cli.mp4"
    done = _a2v(
        stack, *generate_args(SPEECH, "--aspect", "9:16", "--resolution", "480p", "-o", str(out))
    )
    assert done.returncode == 0, done.stderr
    video = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (480, 854)
    assert not Path(str(out) + ".partial").exists()

    streamed = _a2v(stack, *generate_args(SPEECH, "--resolution", "256x256", "-q", "-o", "-"))
    assert streamed.returncode == 0, streamed.stderr
    piped = tmp_path / "piped.mp4"
    piped.write_bytes(streamed.stdout)
    assert sorted(s["codec_name"] for s in probe(piped)["streams"]) == ["aac", "h264"]

    models = _a2v(stack, "models")
    assert models.returncode == 0 and b"talking_avatar" in models.stdout
    health = _a2v(stack, "health")
    assert health.returncode == 0 and health.stdout.strip() == b"SERVING"


def test_cli_reports_status_and_leaves_no_file(stack, tmp_path):
    out = tmp_path / "fail.mp4"
    bad = tmp_path / "noise.wav"
    bad.write_bytes(os.urandom(5000))
    done = _a2v(stack, *generate_args(bad, "-o", str(out)))
    assert done.returncode != 0
    assert b"INVALID_ARGUMENT" in done.stderr
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_health_not_serving_without_triton_and_cli_exit_code():
    server, address = start_server()
    try:
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                a2v_command(address, "health"),
                capture_output=True,
                timeout=30,
            )
            if done.stdout.strip() == b"NOT_SERVING" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert done.stdout.strip() == b"NOT_SERVING" and done.returncode == 1
        # SIGTERM: a clean, prompt exit
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()


def _children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                    found.add(int(entry.name))
                    todo.append(int(entry.name))
    return found


def test_launch_triton_serves_and_sigterm_stops_everything():
    """What `make serve` runs: the server starts Triton, serves, and takes it down on SIGTERM."""
    from media import ROOT

    server, address = start_server("--launch-triton", cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        status = b""
        while time.monotonic() < deadline and status != b"SERVING":
            status = subprocess.run(
                a2v_command(address, "health"),
                capture_output=True,
                timeout=30,
            ).stdout.strip()
            time.sleep(0.5)
        assert status == b"SERVING"
        children = _children(server.pid)
        assert children, "Triton runs as a child of the server"
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
        assert not alive, f"left running after SIGTERM: {alive}"
    finally:
        if server.poll() is None:
            server.kill()
