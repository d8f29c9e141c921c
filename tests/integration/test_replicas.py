"""Several server replicas (issue 13): a session started on one is resumed and cancelled
through another, its tokens cannot be forged or used with another API key, and a replica that
does not share the resume key refuses them. A loopback cluster of real processes: two Tritons
and three a2v-server replicas (conftest's ``cluster``)."""

from __future__ import annotations

import base64
import socket
import threading

import grpc
import pytest
from helpers import CLUSTER_KEYS
from media import PORTRAIT, SPEECH

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import GenerateOptions, file_audio, request_stream
from devstack.cluster import LocalCluster

KEYS = CLUSTER_KEYS


def _auth(key: str = KEYS[0]) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def _requests():
    options = GenerateOptions(resolution="256x256", seed=5)
    return request_stream(options, PORTRAIT.read_bytes(), file_audio(SPEECH))


def _stub(cluster: LocalCluster, i: int) -> tuple[grpc.Channel, pb_grpc.AudioToVideoStub]:
    channel = grpc.insecure_channel(cluster.addresses[i])
    return channel, pb_grpc.AudioToVideoStub(channel)


def _started(cluster: LocalCluster, i: int, chunks: int):
    """A generation on replica ``i``, its first ``chunks`` chunks read, then the connection
    dropped (the client cancels its call): (token, the chunks' data, the last sequence)."""
    channel, stub = _stub(cluster, i)
    call = stub.Generate(_requests(), metadata=_auth(), timeout=120)
    token, data, last = "", [], -1
    for response in call:
        if response.HasField("accepted"):
            token = response.accepted.resume_token
        if response.HasField("chunk"):
            data.append(response.chunk.data)
            last = response.chunk.sequence_number
            if len(data) == chunks:
                break
    call.cancel()
    channel.close()
    return token, data, last


def test_a_dropped_stream_resumes_through_another_replica_byte_for_byte(cluster):
    channel, stub = _stub(cluster, 2)
    with channel:
        reference = b"".join(
            r.chunk.data
            for r in stub.Generate(_requests(), metadata=_auth(), timeout=120)
            if r.HasField("chunk")
        )
    token, data, last = _started(cluster, 0, chunks=6)
    channel, stub = _stub(cluster, 1)
    with channel:
        rest = list(
            stub.Resume(
                pb.ResumeRequest(resume_token=token, last_sequence=last),
                metadata=_auth(),
                timeout=120,
            )
        )
    assert rest[-1].HasField("summary")
    data += [r.chunk.data for r in rest if r.HasField("chunk")]
    assert b"".join(data) == reference
    assert "forwarding" in (cluster.log_dir / "server-1.log").read_text()


def test_cancel_through_another_replica_stops_the_stream(cluster):
    channel, stub = _stub(cluster, 0)
    with channel:
        call = stub.Generate(_requests(), metadata=_auth(), timeout=120)
        token = next(iter(call)).accepted.resume_token
        other, other_stub = _stub(cluster, 2)
        with other:
            other_stub.Cancel(pb.CancelRequest(resume_token=token), metadata=_auth(), timeout=30)
        with pytest.raises(grpc.RpcError) as caught:
            for _ in call:
                pass
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    assert "Cancel(resume_token)" in caught.value.details()


def _refused(cluster: LocalCluster, i: int, token: str, key: str = KEYS[0]) -> grpc.RpcError:
    channel, stub = _stub(cluster, i)
    with channel, pytest.raises(grpc.RpcError) as caught:
        list(stub.Resume(pb.ResumeRequest(resume_token=token), metadata=_auth(key), timeout=30))
    return caught.value


def test_forged_and_foreign_tokens_are_refused_without_calling_anyone(cluster):
    token, _, _ = _started(cluster, 0, chunks=1)
    # a token that names a listener of the caller's choosing, with the real token's MAC
    bait = socket.create_server(("127.0.0.1", 0))
    bait.settimeout(0.5)
    called = threading.Event()

    def watch():
        try:
            bait.accept()
            called.set()
        except OSError:
            pass

    threading.Thread(target=watch, daemon=True).start()
    owner = base64.urlsafe_b64encode(f"127.0.0.1:{bait.getsockname()[1]}".encode())
    forged = owner.decode().rstrip("=") + "." + token.split(".", 1)[1]
    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nope"):
        error = _refused(cluster, 1, bad)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        assert "resume token" in error.details()
    # another API key: the token is not its
    error = _refused(cluster, 1, token, key=KEYS[1])
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = _refused(cluster, 0, token, key=KEYS[1])  # on the owner too
    assert error.code() == grpc.StatusCode.NOT_FOUND
    bait.close()
    assert not called.is_set(), "a forged token made a replica connect to its address"


def test_a_replica_without_the_shared_key_refuses_the_others_tokens(cluster, tmp_path):
    other_key = tmp_path / "other.key"
    other_key.write_text("another-deployment-" + "x" * 40)
    cluster.stop_server(2)
    try:
        cluster.start_server(2, {"A2V_RESUME_KEY_FILE": str(other_key)})
        cluster.wait_serving(2)
        token, _, _ = _started(cluster, 0, chunks=1)
        error = _refused(cluster, 2, token)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "A2V_RESUME_KEY_FILE" in error.details()
    finally:
        cluster.stop_server(2)
        cluster.start_server(2)
        cluster.wait_serving(2)


def test_the_cli_takes_the_clusters_target(cluster, tmp_path):
    """`make cluster` prints an ipv4:H:P,H:P,... target: the CLI balances over it."""
    import subprocess

    from helpers import a2v_command, generate_args
    from media import duration

    out = tmp_path / "cluster.mp4"
    args = generate_args(SPEECH, "--resolution", "256x256", "-q", "-o", str(out))
    done = subprocess.run(
        [*a2v_command(cluster.target, *args), "--api-key", KEYS[0]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert abs(duration(out) - duration(SPEECH)) < 0.1
