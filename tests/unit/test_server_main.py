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


#: what both memory scripts start with (a subprocess: its own malloc settings)
_PRELUDE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from a2v_server.main import fix_mmap_threshold, start_heap_trimmer

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
"""

_HOLES = (
    _PRELUDE
    + """
fix_mmap_threshold()  # 1 MiB buffers now come from the heap
buffers = [bytearray(1 << 20) for _ in range(400)]  # touched: zero-filled
del buffers[::2]  # freed holes below live buffers: the heap's top cannot shrink
before = rss_mib()
if sys.argv[2] == "trim":
    start_heap_trimmer(0.1)
time.sleep(0.5)
print(before, rss_mib())
"""
)


_TOP = (
    _PRELUDE
    + """
fix_mmap_threshold()
buffers = [bytearray(1 << 20) for _ in range(24)]  # a frame's worth, at the heap's top
touched = rss_mib()
del buffers  # free() keeps it for the next frame (no page faults then)...
kept = rss_mib()
start_heap_trimmer(0.1)
time.sleep(0.5)
print(touched, kept, rss_mib())  # ... and the trimmer returns it
"""
)


def test_memory_freed_at_the_heaps_top_waits_for_the_trimmer():
    """What a frame freed at the heap's top stays for the next frame (its pages were faulted
    in and zeroed once), until the trimmer returns it; before, free() returned it at once."""
    import platform
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt and malloc_trim are glibc's")
    server = str(Path(__file__).resolve().parents[2] / "server")
    out = subprocess.run(
        [sys.executable, "-c", _TOP, server], capture_output=True, text=True, check=True
    ).stdout.split()
    touched, kept, trimmed = (int(v) for v in out)
    assert kept > touched - 4, out  # free() kept the 24 MiB
    assert trimmed < kept - 18, out  # the trimmer returned them


def test_the_heap_trimmer_returns_freed_heap_memory(tmp_path):
    """Frame-sized buffers come from the heaps (fix_mmap_threshold); what is freed in the middle
    of a heap goes back to the system only through the trimmer."""
    import platform
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt and malloc_trim are glibc's")
    server = str(Path(__file__).resolve().parents[2] / "server")
    results = {}
    for mode in ("trim", "keep"):
        out = subprocess.run(
            [sys.executable, "-c", _HOLES, server, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        results[mode] = (int(out[0]), int(out[1]))
    trimmed, kept = results["trim"], results["keep"]
    assert kept[1] > kept[0] - 20, kept  # without the trimmer the holes stay resident
    assert trimmed[1] < trimmed[0] - 150, trimmed  # ~200 MiB of holes returned
