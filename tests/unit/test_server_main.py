"""a2v_server.main's process setup, without starting a server."""

from __future__ import annotations

import os


def test_malloc_arenas_are_limited_unless_the_operator_chose(monkeypatch):
    import platform

    from a2v_server.main import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is None  # glibc already read the operator's value
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    glibc = platform.libc_ver()[0] == "glibc"
    expected = max(2, os.cpu_count() or 2) if glibc else None
    assert limit_malloc_arenas() == expected
