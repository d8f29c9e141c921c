"""A pool of Tritons (issue 13): a server given several Triton endpoints spreads new
generations over them, keeps serving while one of them is dead (new work goes to the others),
and uses it again once it is back. Triton's own statistics say where the work went."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import CLUSTER_KEYS, triton_requests
from media import PORTRAIT, SPEECH, duration

from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import GenerateOptions, file_audio, request_stream
from devstack.cluster import LocalCluster

AVATAR = "talking_avatar"


def _requests_done(triton_url: str) -> int:
    return triton_requests(triton_url, AVATAR)


def _generate(address: str, results: list, seconds: list | None = None) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        options = GenerateOptions(resolution="256x256", seed=3)
        requests = request_stream(options, PORTRAIT.read_bytes(), file_audio(SPEECH))
        auth = [("authorization", f"Bearer {CLUSTER_KEYS[0]}")]
        try:
            responses = list(stub.Generate(requests, metadata=auth, timeout=120))
            results.append(responses[-1].summary)
        except grpc.RpcError as error:
            results.append(error)


def _together(address: str, n: int) -> list:
    results: list = []
    threads = [threading.Thread(target=_generate, args=(address, results)) for _ in range(n)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    for thread in threads:
        thread.join(180)
    return results


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _spread(cluster: LocalCluster, address: str) -> list[int]:
    """Two generations at once on one server: the requests each Triton served for them."""
    before = [_requests_done(t.url) for t in cluster.tritons]
    results = _together(address, 2)
    assert all(not isinstance(r, Exception) and r.frames > 0 for r in results), results
    return [_requests_done(t.url) - b for t, b in zip(cluster.tritons, before, strict=True)]


def test_generations_spread_over_the_tritons_and_avoid_a_dead_one(cluster):
    address = cluster.addresses[0]
    assert all(_spread(cluster, address)), "each Triton must get one of the two sequences"

    dead = cluster.tritons[0]
    os.kill(dead.pid, signal.SIGKILL)
    try:
        time.sleep(3)  # the server's health checks (every second) notice it
        assert _serving(address), "one Triton still serves every model"
        before = _requests_done(cluster.tritons[1].url)
        results = _together(address, 2)
        for summary in results:
            assert not isinstance(summary, Exception), summary
            assert abs(summary.duration_seconds - duration(SPEECH)) < 0.1
        assert _requests_done(cluster.tritons[1].url) > before
    finally:
        dead.restart()
    time.sleep(3)  # healthy again at the next checks (reconnecting within 1 s)
    assert all(_spread(cluster, address)), "the restarted Triton must get work again"
