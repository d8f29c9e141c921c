"""Several speakers on the service tier (the fake finds two faces in every picture, and its
avatar paints a box on its face as bright as the audio it got): turns in time, routing by
channel, the lipsync streams' audio, and the mistakes."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from fake_backend import FakeBackend
from media import portrait_png
from test_fragment_report import _video

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, pcm_audio
from a2v_server.settings import Settings

RATE = 16000


@pytest.fixture
async def two(serve):
    settings, backend = Settings(listen="127.0.0.1:0"), FakeBackend(two_faces=True)
    async with serve(settings, backend) as service, AsyncClient(service.address) as client:
        yield service, client


def _pcm(channels: list[np.ndarray]) -> list[bytes]:
    pcm = (np.stack(channels, axis=1) * 32767).astype("<i2").tobytes()
    return [pcm[i : i + 6400] for i in range(0, len(pcm), 6400)]


def _tone(seconds: float, on: tuple[float, float] = (0, 99)) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.where((t >= on[0]) & (t < on[1]), 0.3 * np.sin(2 * np.pi * 200 * t), 0.0)


async def _frames(client, config: pb.GenerateConfig, channels: list[np.ndarray]) -> tuple:
    async def requests():
        yield pb.GenerateRequest(config=config)
        yield pb.GenerateRequest(image=pb.ImageInput(data=portrait_png(320, 240)))
        for piece in pcm_audio(_pcm(channels), RATE, len(channels)):
            yield pb.GenerateRequest(audio=piece)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    responses = [r async for r in client._stub.Generate(requests())]
    data = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return responses[0].accepted, frames


def _centre_level(frame: np.ndarray, box: pb.Box) -> float:
    cx, cy = int((box.x0 + box.x1) / 2), int((box.y0 + box.y1) / 2)
    return float(frame[cy - 8 : cy + 8, cx - 8 : cx + 8].mean())


def _config(**fields) -> pb.GenerateConfig:
    return pb.GenerateConfig(
        output=pb.OutputOptions(resolution=pb.Resolution(size=pb.Size(width=320, height=240))),
        **fields,
    )


async def test_each_face_speaks_in_its_turns_and_idles_outside(two):
    _, client = two
    turns = [
        pb.SpeakerTurn(start_seconds=0, end_seconds=1, face=pb.FaceSelector(index=0)),
        pb.SpeakerTurn(start_seconds=1, end_seconds=2, face=pb.FaceSelector(index=1)),
    ]
    accepted, frames = await _frames(client, _config(speakers=turns), [_tone(2.0)])
    assert (accepted.width, accepted.height, len(frames)) == (320, 240, 50)
    left, right = accepted.faces
    first = [(_centre_level(f, left.box), _centre_level(f, right.box)) for f in frames[3:22]]
    second = [(_centre_level(f, left.box), _centre_level(f, right.box)) for f in frames[28:47]]
    assert all(a > 150 and b < 40 for a, b in first), first  # the left face speaks
    assert all(a < 40 and b > 150 for a, b in second), second  # then the right one


async def test_a_stereo_dialogue_routed_by_channel(two):
    _, client = two
    routes = [
        pb.ChannelSpeaker(channel=0, face=pb.FaceSelector(index=0)),
        pb.ChannelSpeaker(channel=1, face=pb.FaceSelector(index=1)),
    ]
    left_voice = _tone(3.0, (0.0, 1.2))
    right_voice = _tone(3.0, (1.8, 3.0))
    bleed = 0.05  # each microphone hears the other speaker a little
    accepted, frames = await _frames(
        client,
        _config(channel_speakers=routes),
        [left_voice + bleed * right_voice, right_voice + bleed * left_voice],
    )
    left, right = accepted.faces
    levels = np.array([(_centre_level(f, left.box), _centre_level(f, right.box)) for f in frames])
    # (the mouths follow the mix of both channels: half as loud as either voice)
    assert np.all(levels[3:25, 0] > 90) and np.all(levels[3:25, 1] < 40)
    assert np.all(levels[52:72, 0] < 40) and np.all(levels[52:72, 1] > 90)
    assert np.all(levels[38:42] < 40)  # both quiet in the pause (after the hold)


async def test_lipsync_streams_get_the_audio_of_their_turns_only(two):
    service, client = two
    turns = [
        pb.SpeakerTurn(start_seconds=0.5, end_seconds=1.5, face=pb.FaceSelector(index=1)),
        pb.SpeakerTurn(start_seconds=2.0, end_seconds=0, face=pb.FaceSelector(index=0)),
    ]

    async def requests():
        yield pb.GenerateRequest(config=pb.GenerateConfig(model="lipsync", speakers=turns))
        yield pb.GenerateRequest(video=pb.VideoInput(data=_video([60] * 30)))
        for piece in pcm_audio(_pcm([_tone(3.0)]), RATE, 1):
            yield pb.GenerateRequest(audio=piece)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    responses = [r async for r in client._stub.Generate(requests())]
    assert responses[-1].summary.frames == 30
    streams = service.backend.avatars[-2:]
    heard = [np.concatenate(s.heard) for s in streams]
    t = np.arange(len(heard[0])) / RATE
    loud = [np.abs(h) > 0.01 for h in heard]
    assert not loud[0][(t < 0.5) | (t >= 1.5)].any() and loud[0][(t > 0.6) & (t < 1.4)].mean() > 0.5
    assert not loud[1][t < 2.0].any() and loud[1][t > 2.1].mean() > 0.5
    assert all(len(s.video_frames) == 30 for s in streams)  # every stream sees every frame


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {"speakers": [pb.SpeakerTurn(end_seconds=1, face=pb.FaceSelector(index=2))]},
            "shows 2 face(s)",
        ),
        (
            {"channel_speakers": [pb.ChannelSpeaker(channel=1, face=pb.FaceSelector(index=1))]},
            "the audio has 1 channel",
        ),
        (
            {
                "speakers": [pb.SpeakerTurn(end_seconds=1)],
                "face": pb.FaceSelector(index=1),
            },
            "leave face unset",
        ),
        ({"speakers": [pb.SpeakerTurn(start_seconds=2, end_seconds=1)]}, "end after it"),
        (
            {
                "channel_speakers": [
                    pb.ChannelSpeaker(channel=0, face=pb.FaceSelector(index=0)),
                    pb.ChannelSpeaker(channel=1, face=pb.FaceSelector(index=0)),
                ]
            },
            "the same face",
        ),
    ],
)
async def test_mistakes(two, fields, words):
    _, client = two
    with pytest.raises(A2VClientError) as caught:
        await _frames_or_raise(client, _config(**fields))
    assert caught.value.code == "INVALID_ARGUMENT"
    assert words in caught.value.message


async def _frames_or_raise(client, config):
    from a2v_client.errors import client_errors

    with client_errors():
        await _frames(client, config, [_tone(1.0)])
