"""The encoded-audio path of the client stream (audio_input): decoded blocks reach the pipeline
in batches for a file upload and one by one, without waiting, for a live source."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from a2v_server.domain import EncodedAudioPiece, EndOfInput, GenerateSpec, PcmAudioPiece
from a2v_server.errors import FailedPrecondition
from a2v_server.media.audio import EncodedAudioDecoder
from a2v_server.pipeline.audio_input import MERGE_SAMPLES, audio_blocks
from a2v_server.pipeline.visual import StageClock
from a2v_server.settings import Settings

SPEECH = Path(__file__).resolve().parents[2] / "samples" / "speech.ogg"  # Opus: 20 ms packets
SPEC = GenerateSpec("talking_avatar", "", 0, 25.0, None, 512, None, "crop", "", 0.0, None)


def _direct() -> list:
    decoder = EncodedAudioDecoder()
    decoder.write(SPEECH.read_bytes())
    decoder.end()
    return list(decoder.blocks())


async def _events(pieces: list[bytes], delay: float = 0.0, extra=()):
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        yield EncodedAudioPiece(piece)
    for event in extra:
        yield event
    yield EndOfInput()


async def _blocks(events, work: float = 0.0) -> list:
    """``work``: seconds the consumer spends on each block (the pipeline encodes it, ...)."""
    first = await anext(events)
    blocks = []
    async for block in audio_blocks(events, first, SPEC, Settings(), StageClock()):
        blocks.append(block)
        await asyncio.sleep(work)
    return blocks


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_a_file_upload_arrives_in_fewer_larger_blocks_with_the_same_audio():
    direct = _direct()
    blocks = await _blocks(_events(_pieces(SPEECH.read_bytes(), 16384)), work=0.005)
    model = np.concatenate([b.model_pcm for b in blocks])
    output = np.concatenate([b.output_pcm for b in blocks], axis=1)
    assert np.array_equal(model, np.concatenate([b.model_pcm for b in direct]))
    assert np.array_equal(output, np.concatenate([b.output_pcm for b in direct], axis=1))
    # 475 decoded 20 ms blocks become a few dozen: the decoder (~0.1 ms a block) runs far
    # ahead of a consumer that spends 5 ms on each
    assert len(blocks) < len(direct) / 3
    assert max(len(b.model_pcm) for b in blocks) <= MERGE_SAMPLES


async def test_a_live_source_gets_its_audio_as_it_arrives():
    """A piece sent every 30 ms: the first decoded audio comes out long before the input ends
    (nothing waits to fill a larger block)."""
    data = SPEECH.read_bytes()
    pieces = _pieces(data, len(data) // 40)
    events = _events(pieces, delay=0.03)
    first = await anext(events)
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrival = []
    async for _ in audio_blocks(events, first, SPEC, Settings(), StageClock()):
        arrival.append(loop.time() - started)
    upload = 0.03 * len(pieces)
    assert arrival[0] < upload / 3, (arrival[0], upload)
    assert len(arrival) > 20  # many small steps, not a few batches


async def test_an_input_error_while_the_decoder_waits_is_reported():
    data = SPEECH.read_bytes()
    events = _events(_pieces(data, 1000)[:3], extra=[PcmAudioPiece(b"\0\0", 16000, 1)])
    with pytest.raises(FailedPrecondition, match="do not mix encoded and PCM"):
        await _blocks(events)
