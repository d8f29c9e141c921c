"""ListFaces on the service tier (the fake finds one face in the middle of every picture): a
portrait, a video looked at twice a second, and the mistakes that get a status."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from media import portrait_png, tone_wav
from test_fragment_report import _video

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, bytes_audio
from a2v_server.settings import Settings

END = pb.FacesRequest(end=pb.EndOfInput())


async def _list(service, requests) -> pb.FacesResponse:
    async with grpc.aio.insecure_channel(service.address) as channel:
        return await pb_grpc.AudioToVideoStub(channel).ListFaces(iter(requests))


async def test_a_portrait(service):
    found = await _list(
        service,
        [
            pb.FacesRequest(image=pb.ImageInput(data=portrait_png(320, 240))),
            pb.FacesRequest(end=pb.EndOfInput()),
        ],
    )
    assert (found.width, found.height, found.frames_scanned) == (320, 240, 0)
    (face,) = found.faces
    assert face.index == 0 and face.box.x0 == pytest.approx(320 * 0.35)
    assert face.visible_seconds == 0


async def test_a_video_is_looked_at_twice_a_second(service):
    video = _video([20 + 5 * k for k in range(40)])  # 4 s at 10 fps
    pieces = [video[i : i + 999] for i in range(0, len(video), 999)]
    found = await _list(
        service,
        [*(pb.FacesRequest(video=pb.VideoInput(data=p)) for p in pieces), END],
    )
    assert found.duration_seconds == pytest.approx(4.0)
    assert found.frames_scanned == 8  # frames 0, 5, ..., 35
    (face,) = found.faces
    assert (face.first_seconds, face.last_seconds, face.visible_seconds) == (0, 3.5, 4.0)


@pytest.mark.parametrize(
    ("requests", "code", "words"),
    [
        ([END], "INVALID_ARGUMENT", "picture is missing"),
        ([pb.FacesRequest(image=pb.ImageInput(data=portrait_png()))], "INVALID_ARGUMENT", "end"),
        (
            [pb.FacesRequest(image=pb.ImageInput(data=b"not an image" * 10)), END],
            "INVALID_ARGUMENT",
            "image",
        ),
        (
            [pb.FacesRequest(video=pb.VideoInput(data=b"\\0" * 4000)), END],
            "INVALID_ARGUMENT",
            "video",
        ),
        (
            [
                pb.FacesRequest(image=pb.ImageInput(data=portrait_png())),
                pb.FacesRequest(video=pb.VideoInput(data=b"x")),
                END,
            ],
            "FAILED_PRECONDITION",
            "video",
        ),
    ],
)
async def test_mistakes(service, requests, code, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _list(service, requests)
    assert caught.value.code().name == code
    assert words in caught.value.details()


async def test_the_client(client, tmp_path):
    path = tmp_path / "face.png"
    path.write_bytes(portrait_png())
    found = await client.list_faces(image=path)
    assert len(found.faces) == 1
    found = await client.list_faces(video=_video([50] * 10))
    assert found.frames_scanned == 2 and len(found.faces) == 1
    with pytest.raises(ValueError, match="one of them"):
        await client.list_faces()
    with pytest.raises(FileNotFoundError):
        await client.list_faces(video=tmp_path / "missing.mp4")


async def test_a_listing_holds_a_stream_slot(serve):
    gate = asyncio.Event()

    async def held_audio():
        yield pb.AudioChunk(encoded=tone_wav(0.5))
        await gate.wait()

    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=1)
    async with serve(settings) as service, AsyncClient(service.address, timeout=30) as client:
        first = asyncio.ensure_future(
            _consume(client.generate(audio=held_audio(), image=portrait_png()))
        )
        await asyncio.sleep(0.5)
        with pytest.raises(A2VClientError) as caught:
            await client.list_faces(image=portrait_png())
        gate.set()
        first.cancel()
    assert caught.value.code == "RESOURCE_EXHAUSTED"


async def _consume(responses):
    async for _ in responses:
        pass


async def test_accepted_lists_the_faces_in_the_inputs_pixels(client):
    responses = client.generate(
        audio=bytes_audio(tone_wav(0.5)),
        image=portrait_png(320, 240),
        options=GenerateOptions(resolution="256x256"),
    )
    accepted = (await anext(responses)).accepted
    await responses.aclose()
    (face,) = accepted.faces
    assert face.index == 0 and (face.box.x0, face.box.x1) == pytest.approx((112, 208))
