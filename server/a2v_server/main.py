"""Entry point: ``a2v-server`` (and ``create_server`` for tests).

Starts Triton when asked (``--launch-triton``), serves gRPC until SIGTERM/SIGINT, then drains:
health goes NOT_SERVING, running streams get ``shutdown_grace_seconds`` to finish, Triton stops.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from a2v_server.inference.backend import Backend
from a2v_server.inference.pool import TritonPool
from a2v_server.inference.triton_process import TritonProcess
from a2v_server.observability.logs import configure_logging
from a2v_server.observability.metrics import ObservabilityInterceptor, start_metrics_server
from a2v_server.observability.tracing import configure_tracing
from a2v_server.settings import Settings
from a2v_server.transport.health import HealthWatcher
from a2v_server.transport.security import AuthInterceptor, bind
from a2v_server.transport.servicer import SERVICE_NAME, AudioToVideoService, add_to_server

log = logging.getLogger("a2v_server")


def create_server(
    settings: Settings, backend: Backend
) -> tuple[grpc.aio.Server, int, HealthWatcher, AudioToVideoService]:
    """A configured, not yet started server bound to ``settings.listen`` (port 0 = any free)."""
    server = grpc.aio.server(
        # Observability first: it sees the calls the auth interceptor refuses, too.
        interceptors=[ObservabilityInterceptor(), AuthInterceptor.from_settings(settings)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Long streams: ping idle connections so dead clients are noticed.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Ask clients to reconnect every 5 minutes (running streams are not cut): they
            # re-resolve DNS then, so a headless Service's new pods get calls after a scale-up.
            ("grpc.max_connection_age_ms", 300_000),
            # No SO_REUSEPORT (gRPC's default is on): a second process on a port already
            # served is refused at start ("cannot listen") instead of silently sharing its
            # connections, and port 0 picks a port no other server has (grpc/grpc#10755: with
            # it on, servers started side by side on port 0 could share one; seen here as a
            # service test's "connection refused" from a neighbour's port).
            ("grpc.so_reuseport", 0),
        ],
    )
    # not the generated add_AudioToVideoServicer_to_server: malformed bytes -> INVALID_ARGUMENT
    service = AudioToVideoService(backend, settings)
    add_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = bind(server, settings)
    watcher = HealthWatcher(
        backend, health_servicer, [SERVICE_NAME], settings.health_interval_seconds
    )
    return server, port, watcher, service


async def drain(
    server: grpc.aio.Server,
    watcher: HealthWatcher,
    service: AudioToVideoService,
    grace: float,
) -> None:
    """Shut down without losing output, within ``grace`` seconds: health turns NOT_SERVING
    (balancers and probes stop sending work), new generations are refused with UNAVAILABLE
    (the client retries on another replica), running ones finish, and the server keeps
    answering Resume and Cancel (forwarded from the other replicas too) until every finished
    generation has been read to its end. Then it stops; whatever still runs at the end of
    the grace period ends UNAVAILABLE."""
    log.info("shutting down: draining streams for up to %g s", grace)
    deadline = time.monotonic() + grace
    service.drain()
    await watcher.stop()
    while not service.settled and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    log.info("drained" if service.settled else "grace period over: stopping what still runs")
    await server.stop(max(0.5, min(2.0, deadline - time.monotonic())))
    await service.peers.aclose()


async def supervise_triton(triton: TritonProcess, stop: asyncio.Event) -> None:
    """Restart a Triton that died, as a container orchestrator would.

    While it is down, health reports NOT_SERVING and streams fail with UNAVAILABLE; once it is
    back, new requests succeed without restarting the server. Restarts back off (1 s doubling
    to 30 s) so a model that cannot load does not spin.
    """
    delay = 1.0
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if triton.running():
            continue
        log.error("Triton exited (see its log); restarting it in %g s", delay)
        await asyncio.sleep(delay)
        if stop.is_set():
            return
        try:
            await asyncio.to_thread(triton.restart)
            log.info("Triton is back on %s", triton.url)
            delay = 1.0
        except Exception as exc:  # keep trying: the server itself stays up
            log.error("restarting Triton failed: %s", exc)
            delay = min(30.0, delay * 2)


async def serve(settings: Settings) -> None:
    # Before Triton starts: a taken metrics port then fails fast without a process to clean up.
    metrics = start_metrics_server(settings.metrics_listen)
    triton: TritonProcess | None = None
    if settings.launch_triton:
        host, _, triton_port = settings.triton_url.rpartition(":")
        triton = TritonProcess(
            settings.model_repository,
            settings.triton_env,
            host=host,
            grpc_port=int(triton_port),
            instance_kind=settings.triton_instance_kind,
            instance_count=settings.triton_instance_count,
            trace_url=settings.triton_trace_url,
            trace_rate=settings.triton_trace_rate,
        )
        await asyncio.to_thread(triton.start)
    backend = TritonPool(settings.triton_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        server, port, watcher, service = create_server(settings, backend)
        await server.start()
        await watcher.check_once()
        watcher.start()
        supervisor = (
            asyncio.create_task(supervise_triton(triton, stop), name="a2v-triton-supervisor")
            if triton is not None
            else None
        )
        log.info(
            "a2v listening on %s (port %d), Triton at %s",
            settings.listen,
            port,
            settings.triton_url,
        )
        await stop.wait()
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        await drain(server, watcher, service, settings.shutdown_grace_seconds)
    finally:
        await backend.aclose()
        if metrics is not None:
            metrics[0].shutdown()
        if triton is not None:
            await asyncio.to_thread(triton.stop)
        log.info("stopped")


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="a2v-server", description="a2v gRPC server. Flags override A2V_* variables."
    )
    parser.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:50051)")
    parser.add_argument("--triton-url", help="Triton gRPC host:port (default 127.0.0.1:8001)")
    parser.add_argument(
        "--launch-triton",
        action="store_true",
        default=None,
        help="start Triton from the model environment and stop it on exit",
    )
    parser.add_argument("--triton-env", help="model environment with tritonserver (.venv-triton)")
    parser.add_argument("--model-repository", help="Triton model repository (model_repository)")
    parser.add_argument(
        "--triton-instance-kind",
        choices=["cpu", "gpu"],
        help="run the launched Triton's model instances on CPU or GPU (default: config.pbtxt)",
    )
    parser.add_argument(
        "--triton-instance-count", type=int, help="instances per model (default: config.pbtxt)"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument("--log-format", choices=["text", "json"], help="log line format (text)")
    parser.add_argument(
        "--metrics-listen", help="host:port of the Prometheus endpoint (127.0.0.1:9464; '' = off)"
    )
    parser.add_argument(
        "--triton-trace-url", help="OTLP/HTTP traces URL for the launched Triton ('' = off)"
    )
    parser.add_argument("--tls-cert-file", help="PEM server certificate (enables TLS)")
    parser.add_argument("--tls-key-file", help="PEM private key of the server certificate")
    parser.add_argument(
        "--tls-client-ca-file", help="PEM CA for client certificates (requires them: mutual TLS)"
    )
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="allow plaintext on a non-loopback address (a proxy or mesh encrypts it)",
    )
    parser.add_argument("--api-keys-file", help="file of API keys, one per line (requires keys)")
    parser.add_argument(
        "--max-streams-per-key", type=int, help="concurrent Generate streams per key (4)"
    )
    args = parser.parse_args(argv)
    return Settings.from_env().replace(**vars(args))


def limit_malloc_arenas() -> int | None:
    """One glibc malloc arena per core instead of up to eight (glibc's default), unless the
    operator set MALLOC_ARENA_MAX. Returns the limit set, or None.

    Every call starts threads (its encoder's, x264's, the audio decoder's), and glibc gives a new
    thread an arena of its own; memory freed into one arena stays there. The server's RSS then
    stepped up by tens of MiB at random moments with no leak (500 cancelled streams on 2 cores:
    the second half moved -12..+47 MiB between runs; with 2 arenas 139 -> 136..143 MiB, steps
    of at most 10 MiB). Must run before the threads start.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return None  # glibc read it at start-up
    arenas = max(2, os.cpu_count() or 2)
    try:
        if ctypes.CDLL(None).mallopt(-8, arenas) != 1:  # M_ARENA_MAX, in this process's libc
            return None
    except (OSError, AttributeError):  # no mallopt (macOS): nothing to do
        return None
    return arenas


#: buffers of at least this many bytes get pages of their own (mmap), returned when freed;
#: smaller ones come from malloc's heaps (glibc's largest threshold on 64-bit: 32 MiB)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at a heap's top is handed back by free() only above this many bytes (glibc's
#: own rule once it moves the mmap threshold: twice that; fixing the threshold leaves 128 KiB)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
#: the heaps' free pages go back to the system this often (``start_heap_trimmer``)
TRIM_SECONDS = 1.0


def fix_mmap_threshold() -> int | None:
    """Serve buffers below MMAP_THRESHOLD from the heaps, and keep glibc from moving the
    threshold, unless the operator set MALLOC_MMAP_THRESHOLD_. Returns the threshold set, or
    None.

    A buffer with pages of its own costs a page fault per 4 KiB every time it is made, and the
    server makes several frame-sized ones per frame (the decoded picture, the RGB face window,
    the model request and gRPC's copy of it). With the threshold at 256 KiB, a 9.5 s lipsync
    run at 512x512 spent ~0.4 s of its server's 1.8 s CPU in the kernel; from the heaps
    ~0.15 s, and the run took ~10 % less wall time, at 1080p too (5.5 against 6.1 s). glibc's
    own default starts at 128 KiB and raises the threshold to the size of each large buffer
    freed; fixed, the same buffers come from the heaps from the start.

    Freed heap memory stays fragmented until it is trimmed: five 1080p lipsync runs in a row
    peaked at 482 -> 557 MiB (430-480 MiB with every frame in pages of its own), and the RSS
    left after each run stayed at the peak until ``start_heap_trimmer`` returned it (back to
    115-160 MiB within a second).
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
        if mallopt(-3, MMAP_THRESHOLD) != 1:  # M_MMAP_THRESHOLD
            return None
        # A fixed mmap threshold also fixes free()'s trim threshold, at 128 KiB: every frame
        # freed at a heap's top went back to the system, and the next one faulted its pages
        # in again, zeroed (the kernel's clear_page: ~3 % of a 512x512 lipsync stack's CPU
        # samples, gone with this). The heap trimmer still returns them within a second.
        if not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
            mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return None
    return MMAP_THRESHOLD


def start_heap_trimmer(period: float = TRIM_SECONDS) -> threading.Thread | None:
    """A daemon thread that gives the heaps' free pages back to the system every ``period``
    seconds (glibc's malloc_trim; its walk over the free lists takes well under a millisecond
    on an idle heap). Returns None where there is no malloc_trim (not glibc)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def run() -> None:
        while True:
            time.sleep(period)
            trim(0)

    thread = threading.Thread(target=run, name="heap-trimmer", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    arenas = limit_malloc_arenas()
    mmap_threshold = fix_mmap_threshold()
    try:
        settings = parse_args(argv)
    except ValueError as exc:
        print(f"a2v-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log.info("settings: %s", settings.describe())
    if arenas:
        log.info("malloc arenas limited to %d", arenas)
    if mmap_threshold:
        log.info("malloc mmap threshold fixed at %d bytes", mmap_threshold)
    start_heap_trimmer()
    configure_tracing()
    try:
        asyncio.run(serve(settings))
    except Exception as exc:  # start-up failures: say what and exit non-zero
        log.error("a2v-server failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
