"""The speaker video streams through (issue 12): the output starts before the video's upload
has finished when its container allows it (faststart MP4, WebM), an MP4 with its index at the
end starts once its last byte is here, and the sync modes play a video longer than the cache
without storing its frames. Service tier: the fake backend echoes the frames it gets, so the
decoded output shows which source frame each output frame is."""

from __future__ import annotations

import asyncio
import io
import tempfile

import av
import numpy as np
import pytest

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, pcm_audio
from a2v_client.sources import generate_config
from a2v_server.media import video as video_mod

FPS = 25
SIDE = 96


def _frame(k: int) -> np.ndarray:
    """Frame k: its number in the grey level of the top half, noise below (so each frame
    takes about as many bytes, and half the bytes are about half the frames)."""
    rgb = np.random.default_rng(k).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    rgb[: SIDE // 2] = (k * 5) % 200 + 20
    return rgb


def _video(frames: int, fmt: str, movflags: str = "") -> bytes:
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as out:
        options = {"movflags": movflags} if movflags else {}
        with av.open(out.name, "w", format=fmt, options=options) as container:
            codec = "libvpx" if fmt == "webm" else "libx264"
            stream = container.add_stream(codec, rate=FPS)
            stream.width = stream.height = SIDE
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = 25
            for k in range(frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(_frame(k), format="rgb24")))
            container.mux(stream.encode(None))
        with open(out.name, "rb") as f:
            return f.read()


def _audio(seconds: float) -> list[pb.AudioChunk]:
    pcm = np.zeros(int(16000 * seconds), "<i2").tobytes()
    return list(pcm_audio([pcm[i : i + 3200] for i in range(0, len(pcm), 3200)], 16000, 1))


def _shown(data: bytes) -> list[int]:
    """Which source frame each decoded output frame shows."""
    with av.open(io.BytesIO(data)) as container:
        levels = [
            float(np.median(f.to_ndarray(format="rgb24")[: SIDE // 2 - 4, 4:-4]))
            for f in container.decode(video=0)
        ]
    table = np.array([(k * 5) % 200 + 20 for k in range(400)], float)
    return [int(np.argmin(np.abs(table[:40] - level))) for level in levels]  # mod 40 frames


class Upload:
    """A Generate call whose requests the test releases in two parts."""

    def __init__(self, video: bytes, head: int, audio_seconds: float, sync_mode: str) -> None:
        self.video, self.head = video, head
        self.audio = _audio(audio_seconds)
        self.options = GenerateOptions(model="lipsync", sync_mode=sync_mode)
        self.rest_sent = asyncio.Event()
        self.release = asyncio.Event()

    async def requests(self):
        yield pb.GenerateRequest(config=generate_config(self.options, self.video))
        for i in range(0, self.head, 4096):
            yield pb.GenerateRequest(
                video=pb.VideoInput(data=self.video[i : min(self.head, i + 4096)])
            )
        for chunk in self.audio:
            yield pb.GenerateRequest(audio=chunk)
        await self.release.wait()
        yield pb.GenerateRequest(video=pb.VideoInput(data=self.video[self.head :], last=True))
        self.rest_sent.set()
        yield pb.GenerateRequest(end=pb.EndOfInput())


async def _run(client, upload: Upload, *, release_after_first_chunk: float | None):
    """The responses, and whether the first media fragment came before the rest of the video
    was sent. With a timeout: release the rest after it even without a fragment."""
    responses, early = [], None
    call = client._stub.Generate(upload.requests())

    async def release_later():
        await asyncio.sleep(release_after_first_chunk or 0)
        upload.release.set()

    timer = None
    if release_after_first_chunk is not None:
        timer = asyncio.create_task(release_later())
    async for response in call:
        responses.append(response)
        if response.HasField("chunk") and response.chunk.start_seconds < response.chunk.end_seconds:
            if early is None:
                early = not upload.rest_sent.is_set()
            upload.release.set()
    if timer is not None:
        timer.cancel()
    return responses, early


def _output(responses) -> bytes:
    return b"".join(r.chunk.data for r in responses if r.HasField("chunk"))


@pytest.mark.parametrize(
    ("fmt", "movflags"), [("mp4", "+faststart"), ("webm", "")], ids=["faststart-mp4", "webm"]
)
async def test_the_output_starts_before_the_video_upload_has_finished(client, fmt, movflags):
    video = _video(100, fmt, movflags)  # 4 s
    upload = Upload(video, head=len(video) * 3 // 5, audio_seconds=2.0, sync_mode="cut_off")
    responses, early = await _run(client, upload, release_after_first_chunk=30.0)
    assert early is True  # a fragment came while 40 % of the video was still to be sent
    assert responses[-1].summary.frames == 50
    assert _shown(_output(responses)) == list(range(40)) + list(range(10))


async def test_an_mp4_with_its_index_at_the_end_starts_after_its_last_byte(client):
    video = _video(60, "mp4")  # PyAV writes moov after mdat
    assert video.index(b"mdat") < video.index(b"moov")
    upload = Upload(video, head=len(video) * 9 // 10, audio_seconds=2.0, sync_mode="cut_off")
    responses, early = await _run(client, upload, release_after_first_chunk=1.5)
    assert early is False  # nothing could be decoded before the index arrived
    assert responses[-1].summary.frames == 50


@pytest.mark.parametrize(
    ("mode", "seconds", "expected"),
    [
        ("loop", 6.0, lambda n: [k % 60 for k in range(n)]),
        ("bounce", 6.0, lambda n: [k % 118 if k % 118 < 60 else 118 - k % 118 for k in range(n)]),
        ("cut_off", 6.0, lambda n: list(range(n))),
        ("silence", 1.0, lambda n: list(range(n))),
        ("remap", 1.2, lambda n: [round(k * 59 / (n - 1)) for k in range(n)]),
    ],
)
async def test_every_sync_mode_plays_a_long_video_without_storing_its_frames(
    client, monkeypatch, mode, seconds, expected
):
    """A cache of 8 frames for a 60-frame video: loop, bounce and remap reach every earlier
    frame by seeking in the compressed upload (there is no other copy of it)."""
    monkeypatch.setattr(video_mod, "CACHE_BYTES", 8 * SIDE * SIDE * 3 // 2)
    video = _video(60, "mp4", "+faststart")
    upload = Upload(video, head=len(video), audio_seconds=seconds, sync_mode=mode)
    upload.release.set()
    responses, _ = await _run(client, upload, release_after_first_chunk=None)
    frames = responses[-1].summary.frames
    assert frames == {"cut_off": 60, "silence": 60}.get(mode, round(seconds * FPS))
    want = [k % 40 for k in expected(frames)]
    assert _shown(_output(responses)) == want
