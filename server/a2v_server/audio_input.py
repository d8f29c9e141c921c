"""The audio part of the client stream, decoded as it arrives.

``audio_blocks`` turns input events (encoded file pieces or raw PCM, then the end message)
into decoded ``AudioBlock``s. Encoded files are decoded by PyAV in a worker thread that pulls
from the bytes received so far; its blocks come back through a bounded queue, so a decoder
that runs ahead waits, and a cancelled generation stops the thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

from opentelemetry import trace

from .errors import FailedPrecondition, InvalidInput, ResourceExhausted
from .media.audio import MODEL_RATE, AudioBlock, EncodedAudioDecoder, PcmDecoder
from .settings import Settings
from .spec import (
    EncodedAudioPiece,
    EndOfInput,
    GenerateSpec,
    ImagePiece,
    InputEvent,
    PcmAudioPiece,
    VideoPiece,
)
from .visual import StageClock

tracer = trace.get_tracer("a2v_server")


async def audio_blocks(
    inputs: AsyncIterator[InputEvent],
    event: InputEvent,
    spec: GenerateSpec,
    settings: Settings,
    clock: StageClock,
) -> AsyncIterator[AudioBlock]:
    """Decoded audio from ``event`` (the first audio message) and the events after it."""
    limits = {
        "trim_start": spec.trim_start,
        "trim_end": spec.trim_end,
        "max_seconds": settings.max_audio_seconds,
    }
    samples = 0
    with tracer.start_as_current_span("decode.audio"):
        if isinstance(event, EncodedAudioPiece):
            async for block in _encoded(
                inputs, event, EncodedAudioDecoder(**limits), settings, clock
            ):
                samples += block.model_pcm.shape[0]
                yield block
        elif isinstance(event, PcmAudioPiece):
            async for block in _pcm(inputs, event, limits, settings, clock):
                samples += block.model_pcm.shape[0]
                yield block
        elif isinstance(event, EndOfInput):
            raise InvalidInput(
                "the audio is missing: send audio before the end message", field="audio"
            )
        else:
            unexpected(event, "audio")
    # Shorter than half a frame, the clip would have no frame at all: never end OK with that.
    if samples * spec.fps < MODEL_RATE / 2:
        raise InvalidInput(
            f"the audio lasts {1000 * samples / MODEL_RATE:.0f} ms, too short for one video "
            f"frame at {spec.fps:g} fps: send at least {500 / spec.fps:.0f} ms of audio",
            field="audio",
        )
    # Nothing may follow the end message.
    async for extra in inputs:
        raise FailedPrecondition(
            f"{describe(extra)} arrived after the end message: end the input last", field="end"
        )


async def _encoded(inputs, event, decoder: EncodedAudioDecoder, settings, clock):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=16)
    stop = threading.Event()

    def put(item) -> bool:
        """From the worker thread; gives up when the generation was cancelled."""
        while not stop.is_set():
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            try:
                future.result(timeout=0.5)
                return True
            except TimeoutError:
                future.cancel()
        return False

    def decode() -> None:
        try:
            t = time.monotonic()
            for block in decoder.blocks():
                clock.decode += time.monotonic() - t
                if not put(block):
                    return
                t = time.monotonic()
        except BaseException as exc:
            put(exc)
            return
        put(None)

    async def feed() -> None:
        nonlocal event
        received = 0
        while True:
            if isinstance(event, EncodedAudioPiece):
                received += len(event.data)
                _check_bytes(received, settings)
                decoder.write(event.data)
            elif isinstance(event, EndOfInput):
                decoder.end()
                return
            else:
                unexpected(event, "encoded audio")
            event = await next_or_missing_end(inputs)

    worker = loop.run_in_executor(None, decode)
    feeder = asyncio.create_task(feed())
    try:
        while True:
            if feeder.done():
                feeder.result()  # raises the input error, if any
                item = await queue.get()  # input complete: drain the decoder
            else:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, feeder}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    continue
                item = getter.result()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                break
            yield item
        await feeder
    finally:
        stop.set()
        decoder.cancel()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await asyncio.gather(worker, return_exceptions=True)


async def _pcm(inputs, event, limits, settings, clock):
    rate, channels = event.sample_rate, event.channels
    decoder = PcmDecoder(rate, channels, **limits)
    received = 0
    while True:
        if isinstance(event, PcmAudioPiece):
            if event.sample_rate not in (0, rate) or event.channels not in (0, channels):
                raise InvalidInput(
                    "sample_rate and channels must not change within a stream", field="audio.pcm"
                )
            received += len(event.data)
            _check_bytes(received, settings)
            t = time.monotonic()
            blocks = await asyncio.to_thread(decoder.decode, event.data)
        elif isinstance(event, EndOfInput):
            t = time.monotonic()
            blocks = await asyncio.to_thread(decoder.flush)
        else:
            unexpected(event, "PCM audio")
        clock.decode += time.monotonic() - t
        for block in blocks:
            yield block
        if isinstance(event, EndOfInput):
            return
        event = await next_or_missing_end(inputs)


def _check_bytes(received: int, settings: Settings) -> None:
    if received > settings.max_audio_bytes:
        raise ResourceExhausted(
            f"the audio is larger than {settings.max_audio_bytes} bytes: trim it or send a "
            "compressed format",
            field="audio",
        )


async def next_or_missing_end(inputs: AsyncIterator[InputEvent]) -> InputEvent:
    try:
        return await anext(inputs)
    except StopAsyncIteration:
        raise InvalidInput(
            "the input stream closed without an end message: send EndOfInput after the last "
            "audio chunk (a dropped connection is not taken as the end of the audio)",
            field="end",
        ) from None


def unexpected(event: InputEvent, expected: str) -> None:
    raise FailedPrecondition(
        f"{describe(event)} arrived while reading {expected}: send config, visual input, audio, "
        "end in that order, and do not mix encoded and PCM audio",
        field=describe(event),
    )


def describe(event: InputEvent) -> str:
    return {
        ImagePiece: "image",
        VideoPiece: "video",
        EncodedAudioPiece: "audio.encoded",
        PcmAudioPiece: "audio.pcm",
        EndOfInput: "end",
    }.get(type(event), type(event).__name__)
