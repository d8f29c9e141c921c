"""Time limits judged on the client alone (issue 9: a trickled upload, the real-time rule that
must blame neither a slow render nor anything but a slow source) and half-frame audio."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest
from fake_backend import FakeAvatar, FakeBackend
from media import portrait_png
from test_lipsync_modes import _video

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions
from a2v_server.settings import Settings

SMALL = GenerateOptions(resolution="128x128").to_proto()


def _pcm(samples: int) -> pb.GenerateRequest:
    data = (np.sin(np.arange(samples) / 5) * 8000).astype("<i2").tobytes()
    return pb.GenerateRequest(
        audio=pb.AudioChunk(pcm=pb.PcmChunk(data=data, sample_rate=16000, channels=1))
    )


async def _call(address: str, requests) -> tuple[str, str, list[pb.GenerateResponse]]:
    """Raw Generate: the status name, its message, and the responses before it."""
    responses: list[pb.GenerateResponse] = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(
            "/a2v.v1.AudioToVideo/Generate",
            request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString,
        )(requests, timeout=60)
        try:
            async for response in call:
                responses.append(response)
        except grpc.aio.AioRpcError as error:
            return error.code().name, error.details() or "", responses
    return "OK", "", responses


async def test_a_trickled_upload_is_ended_within_its_time(serve):
    """One byte now and then passed the per-message idle timeout and held a stream slot for
    as long as the trickle went on; the upload must average a minimum rate."""
    settings = Settings(listen="127.0.0.1:0", idle_timeout_seconds=1.0)
    image = portrait_png()

    async def trickle():
        yield pb.GenerateRequest(config=pb.GenerateConfig(output=SMALL.output))
        for k in range(60):  # a byte every 0.3 s, each well within the idle timeout
            yield pb.GenerateRequest(image=pb.ImageInput(data=image[k : k + 1]))
            await asyncio.sleep(0.3)

    async with serve(settings) as service:
        start = time.monotonic()
        code, message, _ = await _call(service.address, trickle())
    assert code == "DEADLINE_EXCEEDED", message
    assert "upload is too slow" in message and "KiB/s" in message
    assert time.monotonic() - start < 5  # the idle timeout, then the rate: not 60 x 0.3 s


class _SlowRender(FakeBackend):
    """Renders at a fifth of real time: a frame every 0.2 s at 25 fps."""

    async def open_avatar(self, portrait, landmarks, options, *, mesh=None):
        avatar = _SlowAvatar(portrait, options.fps)
        self.avatars.append(avatar)
        return avatar


class _SlowAvatar(FakeAvatar):
    def __init__(self, portrait, fps) -> None:
        super().__init__(portrait, fps)
        self.queue = asyncio.Queue(maxsize=2)  # like Triton's frame window: backpressure

    async def batches(self):
        async for batch in super().batches():
            await asyncio.sleep(0.2 * len(batch.frames))
            yield batch


async def test_a_slow_render_is_not_blamed_on_the_audio_source(serve):
    """All the audio arrives at once, the render takes 5x real time: under the old rule (wall
    time since the first audio, minus the audio received) this failed with 'the audio arrives
    slower than real time' once the render fell max_audio_lag_seconds behind."""
    settings = Settings(listen="127.0.0.1:0", max_audio_lag_seconds=0.5)

    async def upload():
        yield pb.GenerateRequest(config=pb.GenerateConfig(output=SMALL.output))
        yield pb.GenerateRequest(image=pb.ImageInput(data=portrait_png()))
        for _ in range(12):
            yield _pcm(1600)  # 1.2 s of audio, all at once
        yield pb.GenerateRequest(end=pb.EndOfInput())

    async with serve(settings, _SlowRender()) as service:
        code, message, responses = await _call(service.address, upload())
    assert code == "OK", message
    assert responses[-1].summary.frames == 30


@pytest.mark.parametrize(
    ("samples", "fps", "code", "frames"),
    [
        (319, 25, "INVALID_ARGUMENT", 0),  # just under half a frame
        (320, 25, "OK", 1),  # exactly half a frame: rounds up
        (1600, 25, "OK", 3),  # 2.5 frames: 3 (half to even would say 2)
    ],
)
async def test_half_a_frame_of_audio(serve, samples, fps, code, frames):
    async def requests():
        yield pb.GenerateRequest(config=pb.GenerateConfig(output=SMALL.output))
        yield pb.GenerateRequest(image=pb.ImageInput(data=portrait_png()))
        yield _pcm(samples)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    async with serve() as service:
        got, message, responses = await _call(service.address, requests())
    assert got == code, message
    if code == "OK":
        assert responses[-1].summary.frames == frames
    else:
        assert "too short for one video frame at 25 fps" in message


async def test_half_a_frame_is_judged_at_the_lipsync_videos_own_rate(serve):
    """The check used the requested output rate (25 fps) while lipsync renders at the source's
    (10 fps here): 30 ms of audio passed it and ended OK with no frame at all."""

    async def requests():
        yield pb.GenerateRequest(
            config=pb.GenerateConfig(
                model="lipsync", output=GenerateOptions(resolution="160x120").to_proto().output
            )
        )
        yield pb.GenerateRequest(video=pb.VideoInput(data=_video(4)))
        yield _pcm(480)  # 30 ms: more than half a frame at 25 fps, less than half at 10 fps
        yield pb.GenerateRequest(end=pb.EndOfInput())

    async with serve() as service:
        code, message, responses = await _call(service.address, requests())
    assert code == "INVALID_ARGUMENT", (message, responses[-1:])
    assert "too short for one video frame at 10 fps" in message
