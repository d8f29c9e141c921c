"""Drain (issue 13): SIGTERM on one replica. It turns NOT_SERVING and refuses new generations
(UNAVAILABLE: the client retries elsewhere), finishes the one it runs, and keeps that one's
output for a Resume through another replica until it has been read; then it exits."""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import CLUSTER_KEYS, output_of
from media import PORTRAIT, SPEECH

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import GenerateOptions, file_audio, request_stream

AUTH = [("authorization", f"Bearer {CLUSTER_KEYS[0]}")]


def _requests():
    options = GenerateOptions(resolution="720p", seed=9)
    return request_stream(options, PORTRAIT.read_bytes(), file_audio(SPEECH))


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_a_draining_replica_loses_nothing(cluster):
    reference = output_of(cluster.addresses[2], _requests(), AUTH)
    draining = cluster.server(1)
    try:
        with grpc.insecure_channel(cluster.addresses[1]) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            call = stub.Generate(_requests(), metadata=AUTH, timeout=120)
            data, token, last = [], "", -1
            for response in call:
                if response.HasField("accepted"):
                    token = response.accepted.resume_token
                    draining.send_signal(signal.SIGTERM)  # mid-stream
                if response.HasField("chunk"):
                    data.append(response.chunk.data)
                    last = response.chunk.sequence_number
                    if len(data) == 4:
                        break
            call.cancel()  # the client's connection drops while the replica drains
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.Generate(_requests(), metadata=AUTH, timeout=30))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in refused.value.details()
        time.sleep(3)  # the generation finishes meanwhile; the replica waits for its reader
        assert draining.poll() is None, "the replica must wait until its output is read"
        with grpc.insecure_channel(cluster.addresses[0]) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            request = pb.ResumeRequest(resume_token=token, last_sequence=last)
            rest = list(stub.Resume(request, metadata=AUTH, timeout=60))
        data += [r.chunk.data for r in rest if r.HasField("chunk")]
        assert rest[-1].HasField("summary")
        assert b"".join(data) == reference
        assert draining.wait(15) == 0  # read to its end: the replica exits, cleanly
    finally:
        cluster.stop_server(1)
        cluster.start_server(1)
        cluster.wait_serving(1)
