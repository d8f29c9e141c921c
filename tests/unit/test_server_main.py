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


def test_the_mmap_threshold_is_fixed_unless_the_operator_chose(monkeypatch):
    import platform

    from a2v_server.main import MMAP_THRESHOLD, fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is None
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    glibc = platform.libc_ver()[0] == "glibc"
    assert fix_mmap_threshold() == (MMAP_THRESHOLD if glibc else None)
