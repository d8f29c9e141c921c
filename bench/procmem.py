"""Resident memory of the stack's processes, sampled from /proc while a run is going on.

The server is the ``a2v_server.main`` child of this process; "Triton" is the ``tritonserver``
child together with all of its descendants (the python backend stub of every model instance runs
as a separate process, and that is where the model's numpy/OpenCV memory lives).
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ")"
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _kib_field(path: str, key: str) -> int:
    """A ``key:  N kB`` line of a /proc file, in bytes (0 when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_bytes(pid: int) -> int:
    """Proportional set size: pages shared with other processes count by their share. Summed
    over Triton's processes it counts the python backend's shared memory (mapped by tritonserver
    and by the stub, both holding a 1080p request's frames) once; RSS counts it twice."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def temp_bytes(pid: int) -> int:
    """Bytes in the temporary files a process holds open (deleted ones included: a2v's are)."""
    total = 0
    tmp = os.path.realpath(tempfile.gettempdir())
    fds = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return 0
    for fd in entries:
        try:
            if os.readlink(fd).startswith(tmp):
                total += os.stat(fd).st_size
        except OSError:
            continue
    return total


def all_stacks_rss() -> tuple[int, int]:
    """RSS of every a2v server and of every Triton tree among this process's descendants (a
    cluster: several of each)."""
    tree = _children()
    servers = tritons = 0
    for pid in _descendants(os.getpid(), tree)[1:]:
        cmd = _cmdline(pid)
        if "a2v_server.main" in cmd:
            servers += rss_bytes(pid)
        elif cmd.split(" ", 1)[0].endswith("tritonserver"):
            tritons += sum(rss_bytes(p) for p in _descendants(pid, tree))
    return servers, tritons


@dataclass
class StackPids:
    server: int
    triton: int

    @classmethod
    def find(cls) -> StackPids:
        """The server and tritonserver processes among this process's descendants."""
        tree = _children()
        server = triton = 0
        for pid in _descendants(os.getpid(), tree)[1:]:
            cmd = _cmdline(pid)
            if "a2v_server.main" in cmd and not server:
                server = pid
            elif cmd.split(" ", 1)[0].endswith("tritonserver") and not triton:
                triton = pid
        if not server or not triton:
            raise RuntimeError("could not find the a2v-server and tritonserver processes")
        return cls(server, triton)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far of: the server, the tritonserver process itself (gRPC,
        request handling, copying tensors), its backend stubs (the models) and this client."""
        stubs = _descendants(self.triton, _children())[1:]
        return {
            "server": cpu_seconds(self.server),
            "tritonserver": cpu_seconds(self.triton),
            "model stubs": sum(cpu_seconds(p) for p in stubs),
            "bench client": cpu_seconds(os.getpid()),
        }

    def sample(self) -> tuple[int, int, int]:
        """(server RSS, Triton tree RSS, processes in the Triton tree)."""
        triton_pids = _descendants(self.triton, _children())
        return rss_bytes(self.server), sum(rss_bytes(p) for p in triton_pids), len(triton_pids)

    def triton_pss(self) -> int:
        """The Triton tree's PSS (pss_bytes)."""
        return sum(pss_bytes(p) for p in _descendants(self.triton, _children()))


class PeakSampler:
    """``with PeakSampler(pids) as s: ...`` then ``s.server_peak``, ``s.triton_peak`` (bytes),
    and the idle figures sampled just before (``s.server_idle``, ``s.triton_idle``)."""

    def __init__(self, pids: StackPids, interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.server_idle, self.triton_idle, self.triton_processes = pids.sample()
        self.server_peak, self.triton_peak = self.server_idle, self.triton_idle
        self.triton_pss_idle = self.triton_pss_peak = pids.triton_pss()
        self.temp_peak = 0  # the server's temporary files
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            ticks += 1
            server, triton, _ = self.pids.sample()
            self.server_peak = max(self.server_peak, server)
            self.triton_peak = max(self.triton_peak, triton)
            if ticks % 10 == 0:  # smaps_rollup walks every page table: not every tick
                self.triton_pss_peak = max(self.triton_pss_peak, self.pids.triton_pss())
            self.temp_peak = max(self.temp_peak, temp_bytes(self.pids.server))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
