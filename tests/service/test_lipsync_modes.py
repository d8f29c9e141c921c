"""Lipsync plumbing with the fake backend: video in, sync modes, frame order, durations."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from fake_backend import fake_mouth_source
from media import portrait_png
from prometheus_client import REGISTRY

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, pcm_audio

FPS = 10


def _video(frames: int, fps: int = FPS, codec: str = "libx264", fmt: str = "mp4") -> bytes:
    """A clip whose frame k is a flat grey of level 20 + 20 * k (readable after encoding)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for k in range(frames):
            img = np.full((120, 160, 3), 20 + 20 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


async def _lipsync(client, video: bytes, seconds: float, mode=pb.SYNC_MODE_UNSPECIFIED):
    pcm = np.zeros(int(16000 * seconds), "<i2").tobytes()
    audio = pcm_audio([pcm[i : i + 3200] for i in range(0, len(pcm), 3200)], 16000, 1)
    options = GenerateOptions(model="lipsync", resolution="160x120")

    async def requests():
        yield pb.GenerateRequest(
            config=pb.GenerateConfig(
                model="lipsync", sync_mode=mode, output=options.to_proto().output
            )
        )
        for i in range(0, len(video), 1000):
            yield pb.GenerateRequest(video=pb.VideoInput(data=video[i : i + 1000]))
        for chunk in audio:
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    call = client._stub.Generate(requests())
    responses = [r async for r in call]
    data = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
    with av.open(io.BytesIO(data)) as c:
        levels = [
            int(round((f.to_ndarray(format="rgb24").mean() - 20) / 20)) for f in c.decode(video=0)
        ]
        audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    return responses, levels, audio_s


async def test_bounce_is_the_default_and_follows_the_audio(client):
    responses, levels, _ = await _lipsync(client, _video(4), 1.0)
    assert responses[0].accepted.fps == FPS  # the source frame rate is kept
    assert levels == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]


async def test_cut_off_stops_at_the_shorter_video(client):
    _, levels, audio_s = await _lipsync(client, _video(4), 1.0, pb.SYNC_MODE_CUT_OFF)
    assert levels == [0, 1, 2, 3]
    assert audio_s == pytest.approx(0.4, abs=0.03)


async def test_silence_pads_the_audio_to_a_longer_video(client):
    _, levels, audio_s = await _lipsync(client, _video(8), 0.4, pb.SYNC_MODE_SILENCE)
    assert levels == list(range(8))
    assert audio_s == pytest.approx(0.8, abs=0.03)


async def test_remap_stretches_the_video(client):
    _, levels, _ = await _lipsync(client, _video(4), 1.0, pb.SYNC_MODE_REMAP)
    assert levels == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]


async def test_webm_is_accepted(client):
    _, levels, _ = await _lipsync(
        client, _video(5, codec="libvpx", fmt="webm"), 0.5, pb.SYNC_MODE_LOOP
    )
    assert levels == [0, 1, 2, 3, 4]


def _mouth_metric(source: str) -> float:
    return REGISTRY.get_sample_value("a2v_lipsync_mouth_frames_total", {"source": source}) or 0.0


async def test_summary_counts_how_each_mouth_was_made(client):
    sources = ("passed_through", "warped", "retrieved")
    before = {s: _mouth_metric(s) for s in sources}
    responses, levels, _ = await _lipsync(client, _video(4), 2.3)  # 23 frames, several batches
    summary = responses[-1].summary
    assert summary.frames == len(levels) == 23
    expected = np.bincount(fake_mouth_source(np.arange(23)), minlength=3).tolist()
    assert expected == [5, 13, 5]
    counts = summary.mouth_sources
    assert [counts.passed_through, counts.warped, counts.retrieved] == expected
    assert [_mouth_metric(s) - before[s] for s in sources] == expected


async def test_mouth_sources_stay_unset_without_the_models_output(service, client):
    service.backend.mouth_source = False  # an older lipsync model
    responses, levels, _ = await _lipsync(client, _video(4), 1.0)
    summary = responses[-1].summary
    assert summary.frames == len(levels) == 10
    assert not summary.HasField("mouth_sources")
    avatar = [
        r
        async for r in client.generate(
            audio=pcm_audio([b"\0\0" * 8000], 16000, 1),
            image=portrait_png(),
            options=GenerateOptions(resolution="256x256"),
        )
    ]
    assert avatar[-1].summary.frames > 0
    assert not avatar[-1].summary.HasField("mouth_sources")


async def test_image_for_lipsync_is_invalid(client):
    from a2v_client import A2VClientError

    with pytest.raises(A2VClientError) as info:
        [
            r
            async for r in client.generate(
                audio=pcm_audio([b"\0\0" * 1600], 16000, 1),
                image=b"\x89PNG....",
                options=GenerateOptions(model="lipsync"),
            )
        ]
    assert info.value.code == "INVALID_ARGUMENT" and "video" in info.value.message, info.value
