"""The audio part of the client stream, decoded as it arrives.

``audio_blocks`` turns input events (encoded file pieces or raw PCM, then the end message)
into decoded ``AudioBlock``s. Encoded files are decoded by PyAV in a worker thread that pulls
from the bytes received so far; its blocks come back through a bounded ``Handoff``, so a
decoder that runs ahead waits, blocks that piled up go on joined into larger ones, and a
cancelled generation stops the thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import NoReturn, Protocol, TypedDict

import numpy as np
from opentelemetry import trace

from a2v_server.domain import (
    EncodedAudioPiece,
    EndOfInput,
    ImagePiece,
    InputEvent,
    PcmAudioPiece,
    VideoPiece,
)
from a2v_server.errors import FailedPrecondition, InvalidInput, ResourceExhausted
from a2v_server.media.audio import EncodedAudioDecoder, PcmDecoder
from a2v_server.media.audio_blocks import AudioBlock
from a2v_server.pipeline.handoff import Handoff
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

tracer = trace.get_tracer("a2v_server")


class Trimmed(Protocol):
    """The part of the audio to use (GenerateSpec, AnalyzeSpec)."""

    @property
    def trim_start(self) -> float: ...
    @property
    def trim_end(self) -> float | None: ...


async def audio_blocks(
    inputs: AsyncIterator[InputEvent],
    event: InputEvent,
    spec: Trimmed,
    settings: Settings,
    clock: StageClock,
) -> AsyncGenerator[AudioBlock, None]:
    """Decoded audio from ``event`` (the first audio message) and the events after it."""
    with tracer.start_as_current_span("decode.audio"):
        if isinstance(event, EncodedAudioPiece):
            async for block in _encoded(
                inputs, event, EncodedAudioDecoder(**_limits(spec, settings)), settings, clock
            ):
                yield block
        elif isinstance(event, PcmAudioPiece):
            async for block in _pcm(inputs, event, _limits(spec, settings), settings, clock):
                yield block
        elif isinstance(event, EndOfInput):
            raise InvalidInput(
                "the audio is missing: send audio before the end message", field="audio"
            )
        else:
            unexpected(event, "audio")
    # Nothing may follow the end message.
    async for extra in inputs:
        raise FailedPrecondition(
            f"{describe(extra)} arrived after the end message: end the input last", field="end"
        )


#: decoded blocks that may wait for the pipeline (Opus: 16 x 20 ms)
HANDOFF_LIMIT = 16
#: blocks that piled up are joined into one of at most this many model-rate samples (200 ms),
#: so a file upload moves through the pipeline in a few larger steps; a live source's blocks
#: arrive one at a time and go on alone, with no delay
MERGE_SAMPLES = 3200


async def _encoded(inputs, event, decoder: EncodedAudioDecoder, settings, clock):
    loop = asyncio.get_running_loop()
    handoff: Handoff[AudioBlock | BaseException | None] = Handoff(loop, HANDOFF_LIMIT)

    def decode() -> None:
        try:
            t = time.monotonic()
            for block in decoder.blocks():
                clock.decode += time.monotonic() - t
                if not handoff.put(block):
                    return
                t = time.monotonic()
        except BaseException as exc:
            handoff.put(exc)
            return
        handoff.put(None)

    async def feed() -> None:
        nonlocal event
        received = 0
        while True:
            if isinstance(event, EncodedAudioPiece):
                received += len(event.data)
                check_audio_bytes(received, settings)
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
            items = handoff.take()
            if not items:
                if feeder.done():
                    feeder.result()  # raises the input error, if any
                    await handoff.ready()  # input complete: drain the decoder
                else:
                    ready = asyncio.ensure_future(handoff.ready())
                    await asyncio.wait({ready, feeder}, return_when=asyncio.FIRST_COMPLETED)
                    ready.cancel()
                continue
            for item in _merged(items):
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    await feeder
                    return
                yield item
    finally:
        handoff.stop()
        decoder.cancel()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await asyncio.gather(worker, return_exceptions=True)


def _merged(items: list) -> list:
    """``items`` with runs of consecutive AudioBlocks joined, up to MERGE_SAMPLES each."""
    out: list = []
    run: list[AudioBlock] = []
    for item in items:
        block = isinstance(item, AudioBlock)
        if run and (not block or _samples(run) + len(item.model_pcm) > MERGE_SAMPLES):
            out.append(_joined(run))
            run = []
        if block:
            run.append(item)
        else:
            out.append(item)
    if run:
        out.append(_joined(run))
    return out


def _samples(run: list[AudioBlock]) -> int:
    return sum(len(b.model_pcm) for b in run)


def _joined(run: list[AudioBlock]) -> AudioBlock:
    if len(run) == 1:
        return run[0]
    return AudioBlock(
        np.concatenate([b.model_pcm for b in run]),
        np.concatenate([b.output_pcm for b in run], axis=1),
    )


class _Limits(TypedDict):
    trim_start: float
    trim_end: float | None
    max_seconds: float


def _limits(spec: Trimmed, settings: Settings) -> _Limits:
    return {
        "trim_start": spec.trim_start,
        "trim_end": spec.trim_end,
        "max_seconds": settings.max_audio_seconds,
    }


async def _pcm(inputs, event, limits: _Limits, settings, clock):
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
            check_audio_bytes(received, settings)
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


def check_audio_bytes(received: int, settings: Settings) -> None:
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


def unexpected(event: InputEvent, expected: str) -> NoReturn:
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
