"""grpc.health.v1: SERVING only while Triton and every model the catalog needs are ready."""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from a2v_server.catalog import TRITON_MODELS
from a2v_server.inference.backend import Backend

log = logging.getLogger(__name__)

#: health service name for liveness probes: SERVING while the server answers at all
LIVENESS_SERVICE = "liveness"


class HealthWatcher:
    """Polls the backend and mirrors its readiness into the health servicer.

    Reported for the overall server ("") and for the a2v service name. After
    ``enter_graceful_shutdown`` the status is NOT_SERVING for good (a one-way switch).
    """

    def __init__(
        self,
        backend: Backend,
        servicer: health.aio.HealthServicer,
        service_names: list[str],
        interval: float,
    ) -> None:
        self._backend = backend
        self._servicer = servicer
        self._names = ["", *service_names]
        self._interval = interval
        self._task: asyncio.Task | None = None
        self._models = TRITON_MODELS
        self.serving = False

    async def check_once(self) -> bool:
        ready = await self._backend.ready(self._models)
        if ready != self.serving:
            log.info("backend %s", "ready: SERVING" if ready else "not ready: NOT_SERVING")
        self.serving = ready
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self._servicer.set(name, status)
        # Liveness asks only "does the event loop answer?": restarting the server would not
        # bring Triton back, so Triton's state must not fail a liveness probe.
        await self._servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        return ready

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="a2v-health")

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # never let the watcher die: report NOT_SERVING instead
                log.exception("health check failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._servicer.enter_graceful_shutdown()
