"""How the client sends, judged on the client alone: pauses, message rate, a trickling upload
(``ClientPace``), and live audio that falls behind real time (``AudioLag``).

A slow client is told apart from a slow server by where the time goes: ``AudioLag`` counts only
the time the pipeline sat waiting for audio. When the render, the encoder or a reader that does
not read holds the pipeline up, decoded audio piles up instead, the pipeline never waits, and
the client is not blamed (a reader that stops reading has its own limit, in the sessions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TypeVar

from a2v_server.catalog import MODEL_SAMPLE_RATE
from a2v_server.domain import EncodedAudioPiece, ImagePiece, InputEvent, PcmAudioPiece, VideoPiece
from a2v_server.errors import DeadlineExceeded, ResourceExhausted
from a2v_server.settings import Settings

T = TypeVar("T")

#: file pieces (image, video, encoded audio) of this many bytes and more are not counted
#: against the message rate: the byte limits bound them, and a fast upload's pieces come (or
#: are read from gRPC's buffer) faster than any message rate meant for small messages (a 156 MB
#: ProRes MOV in the CLI's 256 KiB pieces was refused over loopback)
LARGE_PIECE_BYTES = 64 * 1024


class ClientPace:
    """The input events of one stream, with its time limits applied (see the module doc)."""

    def __init__(self, settings: Settings) -> None:
        self._idle = settings.idle_timeout_seconds
        self._rate = settings.max_messages_per_second
        self._min_upload = settings.min_upload_bytes_per_second
        self._started = time.monotonic()
        #: bytes of the image or video upload so far; None once the audio began
        self._upload: int | None = 0
        self._upload_kind = "visual input"

    async def events(self, inputs: AsyncIterator[InputEvent]) -> AsyncIterator[InputEvent]:
        tokens, last = self._rate, time.monotonic()  # token bucket: a burst of `rate` messages
        iterator = inputs.__aiter__()
        while True:
            t = time.monotonic()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when
                # the awaited message arrives as the task is cancelled, so the cancel is lost
                # (a generation whose encoder had crashed went on reading its audio and then
                # waited forever for the encoder: the client never heard of the error)
                async with asyncio.timeout(self._wait_limit(t)):
                    event = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise self._timeout(time.monotonic(), waited=time.monotonic() - t) from None
            now = time.monotonic()
            cost = 0.0 if _large_piece(event) else 1.0
            tokens = min(self._rate, tokens + (now - last) * self._rate) - cost
            last = now
            if tokens < 0:
                raise ResourceExhausted(
                    f"more than {self._rate:g} messages per second: send fewer, larger messages "
                    "(20-100 ms of audio, or file pieces of 64 KiB and more, each)",
                    field="audio",
                )
            self._note(event, now)
            yield event

    def _note(self, event: InputEvent, now: float) -> None:
        if isinstance(event, ImagePiece | VideoPiece) and self._upload is not None:
            self._upload += len(event.data)
            self._upload_kind = "image" if isinstance(event, ImagePiece) else "video"
            if now > self._upload_deadline():
                raise self._too_slow(now)
        elif isinstance(event, EncodedAudioPiece | PcmAudioPiece):
            self._upload = None  # the visual input is complete

    def _upload_deadline(self) -> float:
        """While an image or video uploads, the latest time the bytes so far are enough: after
        the first idle timeout, the upload must average ``min_upload_bytes_per_second``."""
        assert self._upload is not None
        return self._started + max(self._idle, self._upload / self._min_upload)

    def _wait_limit(self, now: float) -> float:
        if self._upload is None:
            return self._idle
        return max(0.001, min(self._idle, self._upload_deadline() - now))

    def _timeout(self, now: float, waited: float) -> DeadlineExceeded:
        # A whole idle timeout without any message is a silent client, whatever the phase.
        if self._upload is not None and waited < self._idle - 0.01:
            return self._too_slow(now)
        return DeadlineExceeded(
            f"no message from the client for {self._idle:g} s: send the input without pauses "
            "(live sources: keep sending audio, even silence)"
        )

    def _too_slow(self, now: float) -> DeadlineExceeded:
        assert self._upload is not None
        elapsed = now - self._started
        return DeadlineExceeded(
            f"the {self._upload_kind} upload is too slow: {self._upload} bytes in {elapsed:.0f} s; "
            f"send it at {self._min_upload // 1024} KiB/s or more, in one go"
        )


class AudioLag:
    """Ends a stream whose live audio falls too far behind real time: the pipeline waited for
    audio longer than the audio it got lasts (a source slower than real time, or one that
    stalls). Only waits count, so a slow render or a slow reader is never blamed on the source.
    """

    def __init__(self, max_lag_seconds: float) -> None:
        self._max = max_lag_seconds
        #: seconds the pipeline waited for the next block of audio, after the first one
        self.starved = 0.0
        self._first = True

    async def next_block(self, blocks: AsyncIterator[T]) -> T:
        """``anext(blocks)``, timed (raises StopAsyncIteration at the end)."""
        t = time.monotonic()
        block = await anext(blocks)
        if not self._first:
            self.starved += time.monotonic() - t
        self._first = False
        return block

    def check(self, samples: int) -> None:
        """``samples``: model-rate samples received so far."""
        lag = self.starved - samples / MODEL_SAMPLE_RATE
        if lag > self._max:
            raise DeadlineExceeded(
                f"the audio arrives slower than real time ({lag:.1f} s behind after "
                f"{samples / MODEL_SAMPLE_RATE:.1f} s of audio): a live source must send at "
                "least as fast as it plays"
            )


def _large_piece(event: InputEvent) -> bool:
    """A piece of a file upload of LARGE_PIECE_BYTES or more."""
    return (
        isinstance(event, ImagePiece | VideoPiece | EncodedAudioPiece)
        and len(event.data) >= LARGE_PIECE_BYTES
    )
