"""The loopback stack of the tiers that run the real Triton (integration, hostile):
devstack.stack.LocalStack (Triton and a2v-server on free loopback ports), its logs in a pytest
temporary folder, and Triton checked to be still running when the tier is done."""

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
    with LocalStack(ROOT, log_dir=tmp_path_factory.mktemp(name), server_env=server_env) as running:
        yield running
        # Every test leaves the server healthy; a crashed Triton would show here too.
        assert running.triton.running()
