"""Analyze on the service tier: the audio is decoded like a Generate's (files, PCM, trim) and
the model's answer comes back as an AudioAnalysis; bad requests get a status naming the fix."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from media import portrait_png, tone_wav

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, bytes_audio, pcm_audio
from a2v_server.settings import Settings


def _speech_like(seconds: float, rate: int = 16000) -> bytes:
    """A tone that sounds for the second half only: 'voiced' from seconds / 2 on."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.where(t >= seconds / 2, 0.5 * np.sin(2 * np.pi * 200 * t), 0.0)
    return (x * 32767).astype("<i2").tobytes()


async def test_analysis_of_a_file(client, service):
    result = await client.analyze(audio=bytes_audio(tone_wav(2.0), 4096), request_id="ana-1")
    assert result.request_id == "ana-1"
    assert result.duration_seconds == pytest.approx(2.0, abs=0.01)
    assert result.jaw_fps == 25 and len(result.jaw_open) == 50
    assert result.kind == pb.AUDIO_KIND_SPEECH  # the fake's verdict on a loud signal
    assert result.analysis_seconds > 0
    samples, options = service.backend.analysed[-1]
    assert len(samples) == pytest.approx(32000, abs=20)  # the models' rate, 16 kHz
    assert options.fps == 25 and options.transcript == ""


async def test_pcm_trim_fps_and_transcript_reach_the_model(client, service):
    pcm = _speech_like(4.0)
    result = await client.analyze(
        audio=pcm_audio([pcm[i : i + 3001] for i in range(0, len(pcm), 3001)], 16000, 1),
        trim=(1.0, 3.5),
        fps=50,
        transcript="hello there",
    )
    assert result.duration_seconds == pytest.approx(2.5, abs=0.01)
    assert len(result.jaw_open) == 125
    # The tone starts at 2 s of the file, 1 s into the trimmed audio: times are the trim's.
    assert [round(r.start_seconds, 1) for r in result.voiced] == [1.0]
    assert result.aligned
    assert service.backend.analysed[-1][1].transcript == "hello there"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.AnalyzeConfig(fps=100), "config.fps"),
        (pb.AnalyzeConfig(trim=pb.AudioTrim(start_seconds=2, end_seconds=1)), "config.trim"),
        (pb.AnalyzeConfig(transcript="a" * 5001), "config.transcript"),
    ],
)
async def test_bad_config_names_the_field(service, config, field):
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        requests = [
            pb.AnalyzeRequest(config=config),
            pb.AnalyzeRequest(audio=pb.AudioChunk(encoded=tone_wav(0.5))),
            pb.AnalyzeRequest(end=pb.EndOfInput()),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Analyze(iter(requests))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field.split(".")[1] in caught.value.details()
    assert not service.backend.analysed


async def _raw(service, requests) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Analyze(iter(requests))
    return caught.value


async def test_stream_mistakes(service):
    config = pb.AnalyzeRequest(config=pb.AnalyzeConfig())
    audio = pb.AnalyzeRequest(audio=pb.AudioChunk(encoded=tone_wav(0.5)))
    end = pb.AnalyzeRequest(end=pb.EndOfInput())
    no_audio = await _raw(service, [config, end])
    assert no_audio.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audio is missing" in no_audio.details()
    no_end = await _raw(service, [config, audio])
    assert no_end.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "end message" in no_end.details()
    audio_first = await _raw(service, [audio, end])
    assert audio_first.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config" in audio_first.details()
    twice = await _raw(service, [config, config, audio, end])
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION
    undecodable = await _raw(
        service, [config, pb.AnalyzeRequest(audio=pb.AudioChunk(encoded=b"not audio" * 100)), end]
    )
    assert undecodable.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not service.backend.analysed


async def test_audio_over_the_limit_is_resource_exhausted(serve):
    settings = Settings(listen="127.0.0.1:0", max_audio_seconds=1.0)
    async with serve(settings) as service, AsyncClient(service.address, timeout=30) as client:
        with pytest.raises(A2VClientError) as caught:
            await client.analyze(audio=bytes_audio(tone_wav(3.0)))
    assert caught.value.code == "RESOURCE_EXHAUSTED"


async def test_an_analysis_holds_a_stream_slot(serve):
    """A key at its stream limit cannot start an analysis either (it costs CPU like a render)."""
    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=1)
    gate = asyncio.Event()

    async def held_audio():
        yield pb.AudioChunk(encoded=tone_wav(0.5))
        await gate.wait()

    async with serve(settings) as service, AsyncClient(service.address, timeout=30) as client:
        first = asyncio.ensure_future(
            _consume(client.generate(audio=held_audio(), image=portrait_png()))
        )
        await asyncio.sleep(0.5)
        with pytest.raises(A2VClientError) as caught:
            await client.analyze(audio=bytes_audio(tone_wav(0.5)))
        gate.set()
        first.cancel()
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert "limit" in caught.value.message


async def _consume(responses):
    async for _ in responses:
        pass


async def test_the_generate_timeline_ends_with_the_clips_beat_grid(client, service):
    responses = [
        r
        async for r in client.generate(
            audio=bytes_audio(tone_wav(2.0), 4096),
            image=portrait_png(),
            options=GenerateOptions(resolution="256x256", include_timeline=True),
        )
    ]
    timelines = [i for i, r in enumerate(responses) if r.HasField("timeline")]
    with_grid = [i for i in timelines if responses[i].timeline.HasField("beat_grid")]
    assert with_grid == [timelines[-1]]  # once, after every frame's
    last = responses[with_grid[0]].timeline
    assert not last.frames and last.beat_grid.beats_per_bar == 4
    assert sum(len(responses[i].timeline.frames) for i in timelines) == 50
    assert responses[-1].HasField("summary") and with_grid[0] < len(responses) - 1
    samples, options = service.backend.analysed[-1]
    assert options.parts == ("beats",) and len(samples) == pytest.approx(32000, abs=20)


async def test_no_beat_grid_without_a_timeline(client, service):
    async for _ in client.generate(
        audio=bytes_audio(tone_wav(1.0)), image=portrait_png(), options=GenerateOptions()
    ):
        pass
    assert not service.backend.analysed
