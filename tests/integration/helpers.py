"""Small helpers shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from media import PORTRAIT, SPEECH

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import Client, GenerateOptions, file_audio
from a2v_server.inference.triton_process import free_port

#: the installed console scripts (a2v, a2v-server)
BIN = Path(sys.executable).parent
#: servers started here must not compete for the default metrics port
#: the API keys of the loopback cluster (conftest's ``cluster``)
CLUSTER_KEYS = ("key-of-team-a-0123456789", "key-of-team-b-0123456789")
NO_METRICS = {**os.environ, "A2V_METRICS_LISTEN": ""}


def start_server(*flags: str, **popen) -> tuple[subprocess.Popen, str]:
    """An ``a2v-server`` process listening on a free loopback port, with ``--triton-url`` another
    free port (nothing answers there unless ``--launch-triton`` starts Triton on it). Returns
    the process and its address; output goes to /dev/null unless ``popen`` says otherwise."""
    port = free_port()
    command = [str(BIN / "a2v-server"), *flags, "--listen", f"127.0.0.1:{port}"]
    command += ["--triton-url", f"127.0.0.1:{free_port()}"]
    options = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    return subprocess.Popen(command, env=NO_METRICS, **options), f"127.0.0.1:{port}"


def a2v_command(address: str, *args: str) -> list[str]:
    """The `a2v` CLI aimed at the server at `address`."""
    return [str(BIN / "a2v"), "--server", address, *args]


def generate_args(audio: Path, *flags: str, image: Path = PORTRAIT) -> list[str]:
    """`a2v generate` of an audio file onto a portrait (the sample by default), then `flags`."""
    return ["generate", "--audio", str(audio), "--image", str(image), *flags]


def generate_all(
    client: Client, audio: Path = SPEECH, image: Path | bytes = PORTRAIT, **options
) -> list[pb.GenerateResponse]:
    """Run one generation of an audio file (the sample speech by default); every response."""
    return list(
        client.generate(audio=file_audio(audio), image=image, options=GenerateOptions(**options))
    )


def render(client: Client, audio: Path, out: Path, image: Path | bytes, **options) -> list:
    """Run one generation; write the chunks to `out`; return every response message."""
    responses = generate_all(client, audio, image, **options)
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    out.write_bytes(b"".join(c.data for c in chunks))
    return responses


def kinds(responses: list[pb.GenerateResponse]) -> list[str]:
    return [r.WhichOneof("message") for r in responses]


def triton_requests(triton_url: str, model: str) -> int:
    """Requests ``model`` has completed on one Triton (its own statistics)."""
    import tritonclient.grpc as tritonclient

    client = tritonclient.InferenceServerClient(triton_url)
    try:
        stats = client.get_inference_statistics(model)
        return sum(m.inference_stats.success.count for m in stats.model_stats)
    finally:
        client.close()


def output_of(address: str, requests, metadata) -> bytes:
    """The file a whole Generate call at ``address`` gives (its chunks joined)."""
    import grpc

    from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        responses = stub.Generate(requests, metadata=metadata, timeout=120)
        return b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
