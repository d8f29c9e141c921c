"""``make load``: a bounded load test on loopback.

N concurrent clients (LOAD_STREAMS, default 3) each upload the same clip again and again for
LOAD_MINUTES (default 2), against a stack this process starts on free loopback ports. Prints
errors by status code (aim: none), first-chunk and total latency percentiles, throughput, and
the memory trend of the server and the Triton process tree (RSS sampled every 5 s). Bounded in
count and time: it stops by itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from devstack.stack import LocalStack

from .inputs import machine, speech
from .procmem import StackPids
from .runs import file_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    streams = int(os.environ.get("LOAD_STREAMS", "3"))
    minutes = float(os.environ.get("LOAD_MINUTES", "2"))
    size = os.environ.get("LOAD_SIZE", "512x512")
    image = (ROOT / "samples" / "portrait.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        audio = speech(Path(tmp) / "load.wav", 6.0)
        env = {"A2V_MAX_STREAMS_PER_KEY": str(streams + 1)}
        with LocalStack(ROOT, server_env=env) as stack:
            pids = StackPids.find()
            stop = time.monotonic() + minutes * 60
            firsts: list[float] = []
            totals: list[float] = []
            errors: Counter[str] = Counter()
            seconds_rendered = [0.0]
            lock = threading.Lock()

            def client() -> None:
                while time.monotonic() < stop:
                    try:
                        run = file_run(stack.address, audio, image, size)
                    except Exception as exc:  # counted, reported, never fatal
                        code = exc.code() if callable(getattr(exc, "code", None)) else None
                        with lock:
                            errors[getattr(code, "name", type(exc).__name__)] += 1
                        continue
                    with lock:
                        firsts.append(run.first_chunk)
                        totals.append(run.total)
                        seconds_rendered[0] += run.duration

            memory: list[tuple[float, int, int]] = []
            t0 = time.monotonic()
            workers = [threading.Thread(target=client) for _ in range(streams)]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                server, triton, _ = pids.sample()
                memory.append((time.monotonic() - t0, server, triton))
                time.sleep(5.0)
            for w in workers:
                w.join()
            wall = time.monotonic() - t0

    def pct(values: list[float], q: float) -> str:
        return f"{np.percentile(values, q) * 1000:.0f} ms" if values else "-"

    print(f"\n## a2v load test ({machine()})\n")
    print(f"{streams} concurrent streams for {minutes:g} min, {size}, 6 s clips\n")
    print("| measure | value |\n|---|---|")
    print(f"| generations completed | {len(totals)} |")
    print(f"| errors | {sum(errors.values())} {dict(errors) if errors else ''} |")
    print(
        f"| first chunk p50 / p95 / max | {pct(firsts, 50)} / {pct(firsts, 95)} / "
        f"{pct(firsts, 100)} |"
    )
    print(f"| total p50 / p95 | {pct(totals, 50)} / {pct(totals, 95)} |")
    print(f"| video seconds rendered per wall second | {seconds_rendered[0] / wall:.2f} |")
    if memory:
        first, last = memory[min(1, len(memory) - 1)], memory[-1]
        print(f"| server RSS (after warm-up -> end) | {first[1] >> 20} -> {last[1] >> 20} MiB |")
        print(
            f"| Triton tree RSS (after warm-up -> end) | {first[2] >> 20} -> {last[2] >> 20} MiB |"
        )
    print(
        "\nmemory trend (s, server MiB, Triton MiB):",
        " ".join(f"{t:.0f}:{s >> 20}/{tr >> 20}" for t, s, tr in memory),
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
