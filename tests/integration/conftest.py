"""Integration tier: the real Triton process and the real a2v-server process on free loopback
ports, started once per test session, driven from the client side."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CLUSTER_KEYS
from loopback import loopback_stack
from media import ROOT, speech_wav

from a2v_client import Client
from devstack.cluster import LocalCluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with loopback_stack(tmp_path_factory, "stack-logs") as running:
        yield running


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """Three server replicas sharing a resume key, each given both of two Tritons; API keys
    on (CLUSTER_KEYS). Real processes on free loopback ports (devstack/cluster.py)."""
    keys = tmp_path_factory.mktemp("keys") / "api-keys"
    keys.write_text("\n".join(CLUSTER_KEYS) + "\n")
    running = LocalCluster(
        ROOT,
        servers=3,
        tritons=2,
        log_dir=tmp_path_factory.mktemp("cluster-logs"),
        # long enough for the drain test to resume through another replica meanwhile
        server_env={"A2V_API_KEYS_FILE": str(keys), "A2V_SHUTDOWN_GRACE_SECONDS": "30"},
    )
    running.start()
    try:
        yield running
        assert all(t.running() for t in running.tritons)
    finally:
        running.stop(graceful=False)  # Tritons killed, as in loopback.py


@pytest.fixture(scope="session")
def client(stack) -> Client:
    with Client(stack.address, timeout=180) as c:
        yield c


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_speech(media_dir) -> Path:
    """About 1.5 s of speech: quick renders for the option matrix."""
    return speech_wav(media_dir / "short.wav", "Hello there, friend.", tail=0.2)


@pytest.fixture(scope="session")
def pause_speech(media_dir) -> Path:
    """1.2 s silence, speech, 1.5 s silence: for mouth-motion checks."""
    return speech_wav(
        media_dir / "pause.wav", "The quick brown fox jumps over the lazy dog.", lead=1.2, tail=1.5
    )
