"""One Analyze call, from input events to an ``Analysis``. No gRPC here.

The audio is decoded as it arrives (``audio_input.audio_blocks``, the same decoder and limits as
a Generate), at the models' rate, and sent to the audio_analysis model in one call once it is
complete: the analysis runs tens of times faster than real time, so streaming it in would
gain little, while one call keeps the model stateless (any Triton instance can take it).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import numpy as np
from opentelemetry import trace

from a2v_server.domain import Analysis, AnalyzeSpec, InputEvent
from a2v_server.errors import InvalidInput
from a2v_server.inference.backend import AnalysisOptions, Backend
from a2v_server.pipeline.audio_input import audio_blocks, next_or_missing_end
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
    """All of the (trimmed) audio, decoded to the models' mono rate."""
    first = await next_or_missing_end(inputs)
    pieces: list[np.ndarray] = []
    blocks = audio_blocks(inputs, first, spec, settings, StageClock())
    async with contextlib.aclosing(blocks):
        async for block in blocks:
            pieces.append(block.model_pcm)
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
