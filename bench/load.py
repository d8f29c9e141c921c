"""``make load``: a bounded load test on a loopback cluster, with a Triton killed mid-run.

A cluster of real processes (devstack/cluster.py: SERVERS a2v-server replicas, TRITONS
Tritons, defaults 3 and 2) on free loopback ports. LOAD_STREAMS concurrent clients (default 4)
each upload a 6 s clip again and again for LOAD_MINUTES (default 2), every run to the next
replica in turn (as a client balancing per call would). A third of the way in, the first
Triton is killed (SIGKILL) and restarted at once; it is back (models loaded) some seconds
later. Streams that were rendering on it move to the other Triton (inference/pool.py).

Prints: failed requests by status code (aim: none; exit status 1 otherwise), first-chunk and
total latency percentiles, throughput, how the work spread over the Tritons (each Triton's own
statistics: requests served by the render models; and the servers' count of sequences placed
on each, failovers included), and the memory trend of the servers and the Triton trees.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import tritonclient.grpc as tritonclient
from prometheus_client.parser import text_string_to_metric_families

from devstack.cluster import LocalCluster

from .inputs import machine, speech
from .procmem import all_stacks_rss
from .runs import file_run

ROOT = Path(__file__).resolve().parents[1]
RENDER_MODELS = ("talking_avatar", "lipsync")


def _served(url: str) -> int:
    """Requests the render models completed on one Triton (0 when it is down)."""
    try:
        client = tritonclient.InferenceServerClient(url)
        try:
            total = 0
            for model in RENDER_MODELS:
                stats = client.get_inference_statistics(model)
                total += sum(m.inference_stats.success.count for m in stats.model_stats)
            return total
        finally:
            client.close()
    except Exception:  # down (being restarted)
        return 0


def _placed(cluster: LocalCluster) -> tuple[Counter[str], int]:
    """Sequences placed on each Triton, summed over the servers' /metrics; and failovers."""
    placed: Counter[str] = Counter()
    failovers = 0
    for port in cluster.metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "a2v_triton_sequences_total":
                    placed[sample.labels["endpoint"]] += int(sample.value)
                elif sample.name == "a2v_triton_failovers_total":
                    failovers += int(sample.value)
    return placed, failovers


def main() -> int:
    streams = int(os.environ.get("LOAD_STREAMS", "4"))
    minutes = float(os.environ.get("LOAD_MINUTES", "2"))
    size = os.environ.get("LOAD_SIZE", "512x512")
    servers = int(os.environ.get("SERVERS", "3"))
    tritons = int(os.environ.get("TRITONS", "2"))
    image = (ROOT / "samples" / "portrait.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        audio = speech(Path(tmp) / "load.wav", 6.0)
        env = {"A2V_MAX_STREAMS_PER_KEY": str(streams + 1)}
        with LocalCluster(ROOT, servers=servers, tritons=tritons, server_env=env) as cluster:
            t0 = time.monotonic()
            stop = t0 + minutes * 60
            kill_at = t0 + minutes * 60 / 3
            firsts: list[float] = []
            totals: list[float] = []
            errors: Counter[str] = Counter()
            rendered = [0.0]
            lock = threading.Lock()

            def client(i: int) -> None:
                k = i
                while time.monotonic() < stop:
                    address = cluster.addresses[k % len(cluster.addresses)]
                    k += 1
                    try:
                        run = file_run(address, audio, image, size)
                    except Exception as exc:  # counted, reported, never fatal
                        code = exc.code() if callable(getattr(exc, "code", None)) else None
                        with lock:
                            errors[getattr(code, "name", type(exc).__name__)] += 1
                        continue
                    with lock:
                        firsts.append(run.first_chunk)
                        totals.append(run.total)
                        rendered[0] += run.duration

            served_before_kill: list[int] = [0] * tritons
            killed_at = back_at = None
            memory: list[tuple[float, int, int]] = []
            workers = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                if killed_at is None and time.monotonic() >= kill_at:
                    served_before_kill[0] = _served(cluster.tritons[0].url)
                    os.kill(cluster.tritons[0].pid, signal.SIGKILL)
                    killed_at = time.monotonic() - t0
                    cluster.tritons[0].restart()  # blocks until its models are loaded
                    back_at = time.monotonic() - t0
                server_rss, triton_rss = all_stacks_rss()
                memory.append((time.monotonic() - t0, server_rss, triton_rss))
                time.sleep(5.0)
            for w in workers:
                w.join()
            wall = time.monotonic() - t0
            served = [
                _served(t.url) + b for t, b in zip(cluster.tritons, served_before_kill, strict=True)
            ]
            placed, failovers = _placed(cluster)
            urls = [t.url for t in cluster.tritons]

    def pct(values: list[float], q: float) -> str:
        return f"{np.percentile(values, q) * 1000:.0f} ms" if values else "-"

    print(f"\n## a2v load test on a loopback cluster ({machine()})\n")
    print(
        f"{servers} servers, {tritons} Tritons; {streams} concurrent streams for {minutes:g} "
        f"min, {size}, 6 s clips, each run on the next server; Triton 1 killed at "
        f"{killed_at or 0:.0f} s and back at {back_at or 0:.0f} s\n"
    )
    print("| measure | value |\n|---|---|")
    print(f"| generations completed | {len(totals)} |")
    print(f"| failed requests | {sum(errors.values())} {dict(errors) if errors else ''} |")
    print(
        f"| first chunk p50 / p95 / max | {pct(firsts, 50)} / {pct(firsts, 95)} / "
        f"{pct(firsts, 100)} |"
    )
    print(f"| total p50 / p95 / max | {pct(totals, 50)} / {pct(totals, 95)} / {pct(totals, 100)} |")
    print(f"| video seconds rendered per wall second | {rendered[0] / wall:.2f} |")
    for n, url in enumerate(urls, 1):
        print(
            f"| Triton {n}: render requests served (its statistics) / sequences placed "
            f"(servers' count) | {served[n - 1]} / {placed.get(url, 0)} |"
        )
    print(f"| sequences moved mid-stream (failovers) | {failovers} |")
    if memory:
        first, last = memory[min(1, len(memory) - 1)], memory[-1]
        for name, i in (("servers", 1), ("Tritons", 2)):
            print(
                f"| {name}' RSS, all (after warm-up -> end) | {first[i] >> 20} -> "
                f"{last[i] >> 20} MiB |"
            )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
