"""Re-rendering a time range (GenerateConfig.range) on the service tier: the range is snapped
to the clip's keyframes, and its frames, timestamps and audio are the full render's."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from fake_backend import MARK, frame_mark
from media import portrait_png
from test_lipsync_modes import _video

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, GenerateOptions, pcm_audio

RATE = 16000


def _tone(seconds: float) -> list[bytes]:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (0.3 * np.sin(2 * np.pi * 330 * t) * 32767).astype("<i2").tobytes()
    return [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]


async def _render(client, seconds: float, **options) -> tuple[list, bytes]:
    responses = [
        r
        async for r in client.generate(
            audio=pcm_audio(_tone(seconds), RATE, 1),
            image=portrait_png(),
            options=GenerateOptions(resolution="320x240", **options),
        )
    ]
    return responses, b"".join(r.chunk.data for r in responses if r.HasField("chunk"))


def _decoded(data: bytes) -> tuple[list[float], list[np.ndarray], float, float]:
    """Frame times and RGB frames; the audio's first time and duration."""
    with av.open(io.BytesIO(data)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(io.BytesIO(data)) as c:
        audio = [(f.time, f.samples / f.sample_rate) for f in c.decode(audio=0)]
    start = audio[1][0]  # (the first is the AAC encoder's priming frame, hidden by players)
    return [t for t, _ in frames], [f for _, f in frames], start, sum(d for _, d in audio[1:])


async def test_a_range_is_the_full_renders_frames_with_their_times(client):
    full, full_data = await _render(client, 4.0)
    part, part_data = await _render(client, 4.0, range=(1.3, 2.2))
    accepted = part[0].accepted
    # snapped outwards to the keyframes (every second at 25 fps): 1.0 .. 3.0 s
    assert (accepted.range.start_seconds, accepted.range.end_seconds) == (1.0, 3.0)
    assert not full[0].accepted.HasField("range")
    times, frames, audio_start, audio_seconds = _decoded(part_data)
    full_times, full_frames, _, _ = _decoded(full_data)
    assert len(frames) == 50 == part[-1].summary.frames
    assert part[-1].summary.duration_seconds == pytest.approx(2.0)
    assert times == pytest.approx(full_times[25:75])
    for k, frame in enumerate(frames):
        assert abs(int(frame[: MARK // 2, : MARK // 2].mean()) - frame_mark(25 + k)) <= 3, k
        mse = np.mean((frame.astype(float) - full_frames[25 + k]) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= 45, k
    assert audio_start == pytest.approx(1.0, abs=0.022)
    assert audio_seconds == pytest.approx(2.0, abs=0.05)
    chunks = [r.chunk for r in part if r.HasField("chunk") and r.chunk.sequence_number > 0]
    assert chunks[0].start_seconds == pytest.approx(1.0)
    assert chunks[-1].end_seconds == pytest.approx(3.0)


async def test_a_range_to_the_end_and_one_past_the_audio(client):
    part, data = await _render(client, 2.5, range=(2.0, 0.0))
    assert (part[0].accepted.range.start_seconds, part[0].accepted.range.end_seconds) == (2, 0)
    times, _, _, _ = _decoded(data)
    assert len(times) == 13 and times[0] == pytest.approx(2.0)  # 2.0 .. 2.48 s
    _, data = await _render(client, 2.5, range=(1.5, 9.0))  # ends with the audio
    times, _, _, _ = _decoded(data)
    assert times[0] == pytest.approx(1.0) and len(times) == 38
    with pytest.raises(A2VClientError) as caught:
        await _render(client, 2.5, range=(3.0, 4.0))
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "range" in caught.value.message and "after the end of the audio" in caught.value.message


async def _lipsync(client, video: bytes, seconds: float, render_range=None) -> bytes:
    options = GenerateOptions(model="lipsync", resolution="160x120", range=render_range)
    audio = pcm_audio(_tone(seconds), RATE, 1)

    async def requests():
        yield pb.GenerateRequest(config=options.to_proto())
        for i in range(0, len(video), 1000):
            yield pb.GenerateRequest(video=pb.VideoInput(data=video[i : i + 1000]))
        for chunk in audio:
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    call = client._stub.Generate(requests())
    return b"".join([r.chunk.data async for r in call if r.HasField("chunk")])


async def test_a_lipsync_range_shows_the_same_source_frames(client):
    """Bounce over a 12-frame video for 5 s at 10 fps: the range's frames are the same source
    frames at the same times as in the full render."""
    video = _video(12)
    full_times, full_frames, _, _ = _decoded(await _lipsync(client, video, 5.0))
    times, frames, audio_start, _ = _decoded(await _lipsync(client, video, 5.0, (2.05, 3.5)))
    assert times == pytest.approx(full_times[20:40])  # 2.0 .. 3.9 s: keyframes every 10 frames
    for k, frame in enumerate(frames):
        assert abs(frame.mean() - full_frames[20 + k].mean()) < 1.0, k
    assert audio_start == pytest.approx(2.0, abs=0.022)


def test_the_range_option_is_checked_before_sending():
    for bad in [(2.0, 1.0), (-1.0, 0.0), (1.0,), "1:2"]:
        with pytest.raises(ValueError, match="range"):
            GenerateOptions(range=bad).check()  # type: ignore[arg-type]
