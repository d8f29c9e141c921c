"""Several Tritons behind one Backend: each new generation goes to the healthy endpoint with the
fewest open sequences, and stays there.

A deployment runs several Triton replicas (a Kubernetes headless Service lists them). Behind a
plain Service, a server would keep one HTTP/2 connection to one Triton pod for its life: more
Triton replicas would not share the work, and a dead one would not be routed around. Here the
server knows every endpoint:

* ``A2V_TRITON_URL`` is a comma-separated list of ``host:port``; an entry ``dns:NAME:PORT`` is
  a name re-resolved on every health check (every address it has is an endpoint: a headless
  Service), so Triton pods that come and go are followed.
* Health: every ``health_interval_seconds`` each endpoint is asked whether it and every model
  are ready. An endpoint that is not gets no new work until it is again. The server is
  SERVING while at least one endpoint serves every model.
* Placement: a new sequence (avatar or lipsync) goes to the healthy endpoint with the fewest
  sequences this server has open on it (ties in turn); a sequence stays on its endpoint until
  it ends. Face and audio analysis (one call each) go to the least loaded healthy endpoint,
  and to another one if that one is unreachable.
* Failover (``FailoverStream``): when the endpoint of a running sequence dies or stalls, the
  sequence is reopened on another one at the first frame not yet received, and the caller's
  frames go on in order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import numpy as np

from a2v_server.catalog import TRITON_MODELS
from a2v_server.domain import Analysis
from a2v_server.errors import DeadlineExceeded, Unavailable
from a2v_server.inference.backend import (
    AnalysisOptions,
    AvatarOptions,
    Face,
    FrameBatch,
    LipsyncOptions,
    call_deadline,
)
from a2v_server.inference.triton import TritonBackend
from a2v_server.observability.metrics import TRITON_FAILOVERS, TRITON_SEQUENCES
from a2v_server.settings import triton_endpoints

log = logging.getLogger(__name__)
T = TypeVar("T")

#: a stream whose model owes frames and has sent none for this long has stalled: fail over
STALL_SECONDS = 10.0
STALL_CHECK_SECONDS = 0.5
#: a generation moves to another Triton at most this many times
MAX_FAILOVERS = 3
#: audio sent again to a reopened sequence, in pieces of this many samples (1 s)
REPLAY_SAMPLES = 16000


class Endpoint:
    """One Triton: its client, its health, and the sequences open on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = TritonBackend(url)
        self.healthy = False
        self.open = 0  # sequences this server has open here
        self.listed = True  # still named by the configuration (DNS)


class TritonPool:
    """The Backend over every configured Triton; see the module doc."""

    def __init__(self, spec: str) -> None:
        self._entries = triton_endpoints(spec)
        self._endpoints: dict[str, Endpoint] = {}
        self._turn = itertools.count()
        for url in self._static():
            self._endpoints[url] = Endpoint(url)
        self._checked = False

    @property
    def url(self) -> str:
        return ",".join(self._entries)

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    # --- health ---------------------------------------------------------------------------------
    async def refresh(self) -> bool:
        """Re-resolve the names, ask every endpoint whether it serves every model; whether one
        does (the server's health)."""
        await self._resolve()
        results = await asyncio.gather(
            *(e.backend.ready(TRITON_MODELS) for e in self._endpoints.values())
        )
        for endpoint, ready in zip(list(self._endpoints.values()), results, strict=True):
            if ready != endpoint.healthy:
                log.info("triton %s %s", endpoint.url, "ready" if ready else "NOT ready")
            endpoint.healthy = ready
        self._checked = True
        await self._forget_unlisted()
        return any(e.healthy for e in self._endpoints.values())

    async def ready(self, models: tuple[str, ...]) -> bool:
        if set(models) == set(TRITON_MODELS):  # the health question: refresh on the way
            return await self.refresh()
        for endpoint in self._candidates():
            if await endpoint.backend.ready(models):
                return True
        return False

    # --- placement ------------------------------------------------------------------------------
    def _candidates(self) -> list[Endpoint]:
        """Healthy endpoints, fewest open sequences first (ties in turn); before the first
        health check, every endpoint."""
        checked = self._checked
        pool = [e for e in self._endpoints.values() if e.listed and (e.healthy or not checked)]
        if not pool:
            return []
        start = next(self._turn) % len(pool)
        turned = pool[start:] + pool[:start]
        return sorted(turned, key=lambda e: e.open)

    def _pick(self, what: str) -> Endpoint:
        candidates = self._candidates()
        if not candidates:
            raise Unavailable(
                f"{what}: no inference server is ready (of {len(self._endpoints)}); retry shortly"
            )
        return candidates[0]

    async def analyze_faces(self, image: np.ndarray) -> list[Face]:
        return await self._unary("face analysis", lambda b: b.analyze_faces(image))

    async def analyze_audio(self, samples: np.ndarray, options: AnalysisOptions) -> Analysis:
        return await self._unary("audio analysis", lambda b: b.analyze_audio(samples, options))

    async def _unary(self, what: str, call: Callable[[TritonBackend], Awaitable[T]]) -> T:
        """A one-shot call on the best endpoint; on a second one when the first is down."""
        candidates = self._candidates()
        if not candidates:
            self._pick(what)  # raises
        error: Unavailable | None = None
        for endpoint in candidates[:2]:  # one more endpoint when the first is unreachable
            try:
                return await call(endpoint.backend)
            except Unavailable as exc:
                if _past_deadline():  # the caller's time ran out: no word on the endpoint
                    raise DeadlineExceeded(f"{what}: the call's deadline passed") from exc
                endpoint.healthy = False  # until the next health check says otherwise
                error = exc
        assert error is not None
        raise error

    async def open_avatar(
        self,
        portrait: np.ndarray,
        landmarks: np.ndarray,
        options: AvatarOptions,
        *,
        mesh: np.ndarray | None = None,
        start_frame: int = 0,
    ) -> FailoverStream:
        async def open_on(endpoint: Endpoint, start: int):
            return await endpoint.backend.open_avatar(
                portrait, landmarks, options, mesh=mesh, start_frame=start
            )

        endpoint = self._pick("talking avatar")
        stream = await open_on(endpoint, start_frame)
        return FailoverStream(self, endpoint, stream, open_on, received=start_frame)

    async def open_lipsync(self, options: LipsyncOptions) -> FailoverStream:
        async def open_on(endpoint: Endpoint, start: int):
            return await endpoint.backend.open_lipsync(options, start_frame=start)

        endpoint = self._pick("lipsync")
        return FailoverStream(self, endpoint, await open_on(endpoint, 0), open_on)

    async def lookahead_seconds(self, model: str) -> float:
        for endpoint in self._candidates():
            value = await endpoint.backend.lookahead_seconds(model)
            if value:
                return value
        return 0.0

    async def aclose(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.backend.aclose()

    # --- endpoints from the configuration -------------------------------------------------------
    def _static(self) -> list[str]:
        return [e for e in self._entries if not e.startswith("dns:")]

    async def _resolve(self) -> None:
        named = [e.removeprefix("dns:") for e in self._entries if e.startswith("dns:")]
        if not named:
            return
        listed = set(self._static())
        loop = asyncio.get_running_loop()
        for address in named:
            host, _, port = address.rpartition(":")
            try:
                infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:
                log.warning("triton name %s does not resolve: %s", host, exc)
                # keep what it named before: a DNS hiccup must not drop running endpoints
                listed |= {u for u, e in self._endpoints.items() if e.listed and u not in listed}
                continue
            for info in infos:
                ip = info[4][0]
                listed.add(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
        for url in listed - self._endpoints.keys():
            log.info("triton %s added", url)
            self._endpoints[url] = Endpoint(url)
        for url, endpoint in self._endpoints.items():
            endpoint.listed = url in listed

    async def _forget_unlisted(self) -> None:
        for url, endpoint in list(self._endpoints.items()):
            if not endpoint.listed and endpoint.open == 0:
                log.info("triton %s removed", url)
                del self._endpoints[url]
                await endpoint.backend.aclose()


class FailoverStream:
    """A model stream that survives the death or stall of its Triton: the sequence is reopened
    on another healthy endpoint at the first frame not yet received (START_FRAME), with the
    audio sent again from the start (the model's state comes from the seed, the audio and the
    time: frames before START_FRAME are computed, not rendered) and, for lipsync, the video
    frames not yet answered. The caller sees a pause, then the next frames, in order.

    Kept for that: the audio sent so far (model rate, 64 KB a second) and the video frames in
    flight. Counted on its endpoint while open (placement).
    """

    def __init__(
        self, pool: TritonPool, endpoint: Endpoint, stream, open_on, *, received: int = 0
    ) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._inner = stream
        self._open_on = open_on  # async (endpoint, start_frame) -> a new stream there
        _place_on(endpoint)
        self._audio: list[np.ndarray] = []
        self._in_flight: list[tuple[int, np.ndarray, int, tuple[int, int] | None]] = []
        self._frames_sent = 0
        self._last_sent = False
        #: the next frame due (a stream that starts at a later frame: that one)
        self._received = received
        self._lock = asyncio.Lock()  # sends, and the replay to a reopened sequence, in order
        self.failovers = 0
        self._replaying: asyncio.Task | None = None
        self._open = True

    @property
    def takes_i420(self) -> bool:
        """As the stream's model; the same after a failover, which never moves a sequence to
        a model that takes the other format (``_fail_over``)."""
        return self._inner.takes_i420

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
        origin: tuple[int, int] | None = None,
    ) -> None:
        async with self._lock:
            self._audio.append(np.array(samples, np.float32).ravel())
            if frames is not None and len(frames):
                assert source_index is not None
                for i in range(len(frames)):
                    index = self._frames_sent + i
                    self._in_flight.append((index, frames[i], int(source_index[i]), origin))
                self._frames_sent += len(frames)
            self._last_sent = self._last_sent or last
            # (a dead stream returns at once once closed: the replay then carries this too)
            await self._inner.send_audio(
                samples, last=last, frames=frames, source_index=source_index, origin=origin
            )

    async def batches(self) -> AsyncGenerator[FrameBatch, None]:
        while True:
            inner = self._inner
            frames = inner.batches()
            try:
                while True:
                    try:
                        batch = await self._next(inner, frames)
                    except StopAsyncIteration:
                        return
                    except Unavailable as error:
                        failed = error
                        break
                    self._received = batch.first_index + len(batch.frames)
                    self._in_flight = [f for f in self._in_flight if f[0] >= self._received]
                    yield batch
            finally:
                await frames.aclose()
            await self._fail_over(failed)

    async def _next(self, inner, frames: AsyncGenerator[FrameBatch, None]) -> FrameBatch:
        """The next batch; Unavailable when the model owes frames and sends none for
        STALL_SECONDS (a Triton that hangs)."""
        waiting = asyncio.ensure_future(anext(frames))
        silent = 0.0
        while True:
            try:
                done, _ = await asyncio.wait({waiting}, timeout=STALL_CHECK_SECONDS)
            except asyncio.CancelledError:
                # the caller goes: stop the read first, or closing ``frames`` after this
                # finds the generator still running (RuntimeError, "generation crashed")
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                raise
            if done:
                return waiting.result()
            silent = silent + STALL_CHECK_SECONDS if inner.owed() else 0.0
            if silent >= STALL_SECONDS:
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                raise Unavailable(f"rendering: the inference server sent nothing for {silent:g} s")

    async def _fail_over(self, error: Unavailable) -> None:
        old, dead = self._inner, self._endpoint
        if _past_deadline():
            # A stream that fails once the call's own deadline has passed (Triton ends the
            # sequence's requests then) says nothing about its Triton: marked unhealthy, every
            # other call would be refused until the next health check.
            raise DeadlineExceeded("rendering: the call's deadline passed") from error
        self.failovers += 1
        if self.failovers > MAX_FAILOVERS:
            raise error
        dead.healthy = False  # no new work there until its health check passes again
        await old.aclose()  # a send waiting for its window returns (the replay carries it)
        # The lock passes from here to the replay task, which releases it when done: a send
        # waiting for the lock now must go after the replay, not between (it would be sent
        # twice, and before older audio).
        await self._lock.acquire()
        try:
            others = [e for e in self._pool._candidates() if e is not dead]
            if not others:
                raise error
            start = self._received
            try:
                stream = await self._open_on(others[0], start)
            except Unavailable:
                log.warning("failover: the model cannot start at frame %d", start)
                raise error from None
            if stream.takes_i420 != old.takes_i420:
                # Another version of the model (a rolling upgrade): the frames in flight, and
                # the crops the encoder pastes into, are in the other format. The error stands
                # (the client resumes) rather than the output's pixels mixing two paths.
                await stream.aclose()
                log.warning("failover: %s runs a lipsync model of another version", others[0].url)
                raise error
        except BaseException:
            self._lock.release()
            raise
        log.warning(
            "triton %s failed (%s): the sequence goes on on %s from frame %d",
            dead.url,
            error.message,
            others[0].url,
            start,
        )
        dead.open -= 1
        self._endpoint, self._inner = others[0], stream
        _place_on(others[0])
        TRITON_FAILOVERS.labels(dead.url).inc()
        # A task of its own: the new sequence's window opens only as its frames are taken,
        # here, meanwhile.
        self._replaying = asyncio.create_task(self._replay(stream, start), name="a2v-replay")

    async def _replay(self, stream, start: int) -> None:
        """Everything sent so far, again (runs holding the lock, which it releases)."""
        try:
            audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
            pieces = [audio[i : i + REPLAY_SAMPLES] for i in range(0, len(audio), REPLAY_SAMPLES)]
            for piece in pieces:
                await stream.send_audio(piece)
            for index, frame, source_index, origin in self._in_flight:
                if index >= start:
                    await stream.send_audio(
                        np.zeros(0, np.float32),
                        frames=frame[None],
                        source_index=np.array([source_index]),
                        origin=origin,
                    )
            if self._last_sent:
                await stream.send_audio(np.zeros(0, np.float32), last=True)
        finally:
            self._lock.release()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._endpoint.open -= 1
            if self._replaying is not None and not self._replaying.done():
                self._replaying.cancel()  # (it releases the lock)
            self._audio.clear()
            self._in_flight.clear()
        await self._inner.aclose()


def _past_deadline() -> bool:
    """Whether the current call's deadline has passed."""
    deadline = call_deadline.get()
    return deadline is not None and time.monotonic() >= deadline


def _place_on(endpoint: Endpoint) -> None:
    """Count a sequence opened on ``endpoint`` (placement, and the metric)."""
    endpoint.open += 1
    TRITON_SEQUENCES.labels(endpoint.url).inc()
