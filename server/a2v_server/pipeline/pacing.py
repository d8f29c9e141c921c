"""Limits on how a client sends: pauses, message rate, and audio that falls behind real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from a2v_server.catalog import MODEL_SAMPLE_RATE
from a2v_server.domain import InputEvent
from a2v_server.errors import DeadlineExceeded, ResourceExhausted
from a2v_server.settings import Settings


async def paced(inputs: AsyncIterator[InputEvent], settings: Settings) -> AsyncIterator[InputEvent]:
    """The input events, with the idle timeout and the message-rate limit applied."""
    seconds = settings.idle_timeout_seconds
    rate = settings.max_messages_per_second
    tokens, last = rate, time.monotonic()  # token bucket: a burst of `rate` messages
    iterator = inputs.__aiter__()
    while True:
        try:
            event = await asyncio.wait_for(anext(iterator), seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"no message from the client for {seconds:g} s: send the input without pauses "
                "(live sources: keep sending audio, even silence)"
            ) from None
        now = time.monotonic()
        tokens = min(rate, tokens + (now - last) * rate) - 1.0
        last = now
        if tokens < 0:
            raise ResourceExhausted(
                f"more than {rate:g} messages per second: send fewer, larger messages (20-100 "
                "ms of audio, or file pieces of 64 KiB and more, each)",
                field="audio",
            )
        yield event


class AudioLag:
    """Ends a stream whose audio falls too far behind real time (a slow sender)."""

    def __init__(self, max_lag_seconds: float) -> None:
        self._max = max_lag_seconds
        self._started: float | None = None

    def check(self, samples: int) -> None:
        """``samples``: model-rate samples received so far."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
            return
        lag = (now - self._started) - samples / MODEL_SAMPLE_RATE
        if lag > self._max:
            raise DeadlineExceeded(
                f"the audio arrives slower than real time ({lag:.1f} s behind after "
                f"{now - self._started:.1f} s): a live source must send at least as fast "
                "as it plays"
            )
