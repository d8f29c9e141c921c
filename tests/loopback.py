"""The loopback stack of the tiers that run the real Triton (integration, hostile):
devstack.stack.LocalStack (Triton and a2v-server on free loopback ports), its logs in a pytest
temporary folder, and Triton checked to be still running when the tier is done.

At the end the server drains and stops as in production; Triton is killed rather than stopped
(TritonProcess.stop(graceful=False): its own shutdown takes ~5 s, model instance after model
instance, and no test here looks at it; test_errors_and_ops stops a Triton with SIGTERM)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from media import ROOT

from devstack.stack import LocalStack


@contextlib.contextmanager
def loopback_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, server_env: dict[str, str] | None = None
) -> Iterator[LocalStack]:
    running = LocalStack(ROOT, log_dir=tmp_path_factory.mktemp(name), server_env=server_env)
    running.start()
    try:
        yield running
        # Every test leaves the server healthy; a crashed Triton would show here too.
        assert running.triton.running()
    finally:
        running.stop(graceful=False)
