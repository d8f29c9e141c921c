"""Items from a worker thread to the event loop, in batches, with backpressure."""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Decoded blocks from the decoder thread to the event loop, in batches.

    An Ogg/Opus file decodes into 20 ms blocks, 50 a second, far faster than real time: one
    ``run_coroutine_threadsafe`` round trip per block (a task, a future, a wait in the thread)
    cost about a tenth of the server's CPU time for a file upload. Here the thread appends
    under a lock and wakes the loop only when the loop is waiting for it, and the loop takes
    everything that has piled up at once. Backpressure: the thread waits while ``limit`` items
    are pending.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._lock = threading.Condition()
        self._items: collections.deque[T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False

    def put(self, item: T) -> bool:
        """From the decoder thread; False once the consumer stopped (nobody will read)."""
        with self._lock:
            while len(self._items) >= self._limit and not self._stopped:
                self._lock.wait()
            if self._stopped:
                return False
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)
        return True

    def take(self) -> list[T]:
        """Everything pending (possibly nothing), oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._lock.notify_all()
        return items

    async def ready(self) -> None:
        """Return once an item is pending."""
        with self._lock:
            if self._items:
                return
            self._waiter = waiter = self._loop.create_future()
        await waiter

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
