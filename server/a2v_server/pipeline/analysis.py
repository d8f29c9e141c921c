"""One Analyze call, from input events to an ``Analysis``. No gRPC here.

The audio is decoded with the same decoder and limits as a Generate's, at the models' rate
(``model_audio``), and sent to the audio_analysis model in one call once it is complete: the
analysis runs tens of times faster than real time, so streaming it in would gain little, while
one call keeps the model stateless (any Triton instance can take it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import numpy as np
from opentelemetry import trace

from a2v_server.domain import Analysis, AnalyzeSpec, EncodedAudioPiece, EndOfInput, InputEvent
from a2v_server.errors import FailedPrecondition, InvalidInput
from a2v_server.inference.backend import AnalysisOptions, Backend
from a2v_server.media.audio import EncodedAudioDecoder
from a2v_server.pipeline.audio_input import (
    audio_blocks,
    check_audio_bytes,
    describe,
    next_or_missing_end,
    unexpected,
)
from a2v_server.pipeline.pacing import ClientPace
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")


async def analyze(
    spec: AnalyzeSpec, inputs: AsyncIterator[InputEvent], backend: Backend, settings: Settings
) -> Analysis:
    """The analysis of the audio in ``inputs`` (audio messages, then the end message)."""
    inputs = ClientPace(settings).events(inputs)
    samples = await model_audio(spec, inputs, settings)
    if not samples.size:
        raise InvalidInput("the audio contains no samples (after trimming)", field="audio")
    with tracer.start_as_current_span("inference.analyze") as span:
        t = time.monotonic()
        result = await backend.analyze_audio(
            samples, AnalysisOptions(fps=spec.fps, transcript=spec.transcript)
        )
        span.set_attribute("a2v.audio_seconds", result.duration_seconds)
    log.info("analysed %.1f s of audio in %.2f s", result.duration_seconds, time.monotonic() - t)
    return result


async def model_audio(
    spec: AnalyzeSpec, inputs: AsyncIterator[InputEvent], settings: Settings
) -> np.ndarray:
    """All of the (trimmed) audio, decoded to the models' mono rate.

    An encoded file is collected whole and decoded in one go: the model waits for the whole
    audio anyway, and decoding it as it arrives (Generate's way, a hand-off per decoded block)
    took 0.25-0.38 s for a minute of WAV here instead of 0.1 s. Raw PCM goes Generate's way.
    """
    first = await next_or_missing_end(inputs)
    if isinstance(first, EncodedAudioPiece):
        data = await _encoded_file(first, inputs, settings)
        return await asyncio.to_thread(_decoded, data, spec, settings)
    pieces: list[np.ndarray] = []
    blocks = audio_blocks(inputs, first, spec, settings, StageClock())
    async with contextlib.aclosing(blocks):
        async for block in blocks:
            pieces.append(block.model_pcm)
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


async def _encoded_file(
    first: EncodedAudioPiece, inputs: AsyncIterator[InputEvent], settings: Settings
) -> bytes:
    pieces, size = [first.data], len(first.data)
    check_audio_bytes(size, settings)
    while not isinstance(event := await next_or_missing_end(inputs), EndOfInput):
        if not isinstance(event, EncodedAudioPiece):
            unexpected(event, "encoded audio")
        size += len(event.data)
        check_audio_bytes(size, settings)
        pieces.append(event.data)
    async for extra in inputs:
        raise FailedPrecondition(
            f"{describe(extra)} arrived after the end message: end the input last", field="end"
        )
    return b"".join(pieces)


def _decoded(data: bytes, spec: AnalyzeSpec, settings: Settings) -> np.ndarray:
    decoder = EncodedAudioDecoder(
        trim_start=spec.trim_start,
        trim_end=spec.trim_end,
        max_seconds=settings.max_audio_seconds,
        model_only=True,  # nobody hears the output-rate audio here: 0.10 -> 0.03 s a minute
    )
    decoder.write(data)
    decoder.end()
    pieces = [block.model_pcm for block in decoder.blocks()]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
