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
  it ends. Face analysis (one call) goes to the least loaded healthy endpoint, and to another
  one if that one is unreachable.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import AsyncGenerator

import numpy as np

from a2v_server.catalog import TRITON_MODELS
from a2v_server.errors import Unavailable
from a2v_server.inference.backend import AvatarOptions, Face, FrameBatch, LipsyncOptions
from a2v_server.inference.triton import TritonBackend
from a2v_server.settings import triton_endpoints

log = logging.getLogger(__name__)


class Endpoint:
    """One Triton: its client, its health, and the sequences open on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = TritonBackend(url)
        self.healthy = False
        self.open = 0  # sequences this server has open here
        self.placed = 0  # sequences ever placed here
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
        candidates = self._candidates()
        if not candidates:
            self._pick("face analysis")  # raises
        error: Unavailable | None = None
        for endpoint in candidates[:2]:  # one more endpoint when the first is unreachable
            try:
                return await endpoint.backend.analyze_faces(image)
            except Unavailable as exc:
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
    ) -> PlacedStream:
        endpoint = self._pick("talking avatar")
        stream = await endpoint.backend.open_avatar(portrait, landmarks, options, mesh=mesh)
        return PlacedStream(stream, endpoint)

    async def open_lipsync(self, options: LipsyncOptions) -> PlacedStream:
        endpoint = self._pick("lipsync")
        return PlacedStream(await endpoint.backend.open_lipsync(options), endpoint)

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


class PlacedStream:
    """A model stream on one endpoint, counted there while it is open."""

    def __init__(self, stream, endpoint: Endpoint) -> None:
        self._stream = stream
        self.endpoint = endpoint
        endpoint.open += 1
        endpoint.placed += 1
        self._open = True

    async def send_audio(self, samples: np.ndarray, **kwargs) -> None:
        await self._stream.send_audio(samples, **kwargs)

    def batches(self) -> AsyncGenerator[FrameBatch, None]:
        return self._stream.batches()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self.endpoint.open -= 1
        await self._stream.aclose()
