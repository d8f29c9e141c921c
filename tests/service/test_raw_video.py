"""A speaker video sent as uncompressed frames (issue 12: live lipsync from a camera or a
capture card): I420 and RGB24 frames, as they come, with or without their own times. Service
tier: the fake backend echoes the frames it gets, so the decoded output shows which source
frame each output frame is, and how close its pixels are to the source's."""

from __future__ import annotations

import asyncio
import io

import av
import grpc
import numpy as np
import pytest
from av.video.reformatter import Colorspace

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, pcm_audio

FPS = 25
W, H = 128, 96


def _rgb(k: int) -> np.ndarray:
    """Frame k: its number in the grey level of the top half, a smooth gradient below that
    moves with k (so a frame shown in another's place would not match it)."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[..., 0] = 20 + x + k  # smooth: 4:2:0 chroma keeps it
    rgb[..., 1] = np.minimum(20 + y * 2 + k, 255)
    rgb[..., 2] = 120 + (x + y) // 4
    rgb[: H // 2] = (k * 5) % 200 + 20
    return rgb


def _i420(rgb: np.ndarray) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p").to_ndarray()


def _raw(k: int, fmt: str, time_us: int = 0, first: bool = True) -> pb.GenerateRequest:
    rgb = _rgb(k)
    data = (_i420(rgb) if fmt == "i420" else rgb).tobytes()
    frame = pb.RawVideoFrame(data=data, time_us=time_us)
    if first:  # later frames may leave the format 0: "as before"
        frame.format = pb.RAW_PIXEL_FORMAT_I420 if fmt == "i420" else pb.RAW_PIXEL_FORMAT_RGB24
        frame.width, frame.height, frame.frame_rate = W, H, FPS
    return pb.GenerateRequest(video=pb.VideoInput(frame=frame))


def _audio(seconds: float) -> list[pb.GenerateRequest]:
    """Silent PCM in pieces of 20 ms."""
    pcm = np.zeros(int(16000 * seconds), "<i2").tobytes()
    chunks = pcm_audio([pcm[i : i + 640] for i in range(0, len(pcm), 640)], 16000, 1)
    return [pb.GenerateRequest(audio=chunk) for chunk in chunks]


def _decoded(data: bytes) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    """The output's I420 pictures, frame rate and size."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="yuv420p") for f in container.decode(stream)]
        return frames, float(stream.average_rate), (stream.width, stream.height)


def _tagged_709(data: bytes) -> bool:
    with av.open(io.BytesIO(data)) as container:
        return int(next(container.decode(video=0)).colorspace) == 1


def _shown(frames: list[np.ndarray]) -> list[int]:
    """Which source frame each output frame shows (from the grey level of the top half)."""
    table = np.array([(k * 5) % 200 + 20 for k in range(40)], float)
    shown = []
    for f in frames:
        level = float(np.median(_to_rgb(f)[: H // 2 - 4, 4:-4]))
        shown.append(int(np.argmin(np.abs(table - level))))
    return shown


def _to_rgb(i420: np.ndarray, bt709: bool = False) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    matrix = Colorspace.ITU709 if bt709 else Colorspace.ITU601
    return frame.reformat(format="rgb24", src_colorspace=matrix).to_ndarray()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def _output(responses) -> bytes:
    return b"".join(r.chunk.data for r in responses if r.HasField("chunk"))


async def _generate(client, requests, options=None) -> list:
    options = options or GenerateOptions(model="lipsync", sync_mode="cut_off")

    async def stream():
        yield pb.GenerateRequest(config=options.to_proto())
        for request in requests:
            if isinstance(request, asyncio.Event):
                await request.wait()
            else:
                yield request
        yield pb.GenerateRequest(end=pb.EndOfInput())

    return [r async for r in client._stub.Generate(stream())]


@pytest.mark.parametrize("fmt", ["i420", "rgb24"])
async def test_raw_frames_come_back_at_their_size_rate_and_pixels(client, fmt):
    frames = [_raw(k, fmt, first=k == 0) for k in range(50)]
    audio = _audio(2.0)
    requests = [frames[0]]
    for k in range(1, 50):  # a frame, then the audio it covers, as a live source sends them
        requests += [frames[k], *audio[k * 2 - 2 : k * 2]]
    requests += audio[98:]
    responses = await _generate(client, requests)
    output = _output(responses)
    decoded, rate, size = _decoded(output)
    assert size == (W, H) and rate == FPS
    assert _shown(decoded) == [k % 40 for k in range(50)]
    if fmt == "i420":  # the source's own samples, up to the H.264 re-encode; left untagged
        assert min(_psnr(decoded[k], _i420(_rgb(k))) for k in range(50)) >= 45
        assert not _tagged_709(output)
    # as a player shows it (read under its colour tags): the source's picture
    bt709 = _tagged_709(output)
    assert min(_psnr(_to_rgb(decoded[k], bt709), _rgb(k)) for k in range(50)) >= 38


async def test_the_output_starts_while_raw_frames_are_still_coming(client):
    """A live source: the first fragment is out before the last frame has been sent."""
    first_out = asyncio.Event()
    audio = _audio(4.0)
    requests: list = [_raw(0, "i420")]
    for k in range(1, 100):
        if k == 60:
            requests.append(first_out)  # the rest waits for the first fragment
        requests += [_raw(k, "i420", first=False), *audio[k * 2 - 2 : k * 2]]
    requests += audio[198:]

    options = GenerateOptions(model="lipsync", sync_mode="cut_off")

    async def stream():
        yield pb.GenerateRequest(config=options.to_proto())
        for request in requests:
            if isinstance(request, asyncio.Event):
                await asyncio.wait_for(request.wait(), 30)
            else:
                yield request
        yield pb.GenerateRequest(end=pb.EndOfInput())

    responses = []
    async for response in client._stub.Generate(stream()):
        responses.append(response)
        if response.HasField("chunk") and response.chunk.end_seconds > 0:
            first_out.set()
    decoded, _, _ = _decoded(_output(responses))
    assert responses[-1].summary.frames == 100
    assert _shown(decoded) == [k % 40 for k in range(100)]


async def test_frames_with_their_own_times_keep_their_timing(client):
    """A source that drops a frame: 0, 40, 80 ms, then 160 ms; slot 3 (120 ms) shows the
    frame before the gap, as a player shows it."""
    times = [0, 40_000, 80_000, 160_000, 200_000, 240_000, 280_000, 320_000, 360_000, 400_000]
    requests = [_raw(k, "i420", t, first=k == 0) for k, t in enumerate(times)]
    responses = await _generate(client, requests + _audio(0.44))
    decoded, _, _ = _decoded(_output(responses))
    assert _shown(decoded) == [0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9]


async def test_a_looped_raw_video_reads_its_frames_again(client):
    requests = [_raw(k, "i420", first=k == 0) for k in range(20)]
    responses = await _generate(
        client, requests + _audio(2.0), GenerateOptions(model="lipsync", sync_mode="bounce")
    )
    decoded, _, _ = _decoded(_output(responses))
    bounce = [k % 38 if k % 38 < 20 else 38 - k % 38 for k in range(50)]
    assert _shown(decoded) == bounce


def _frame(**fields) -> pb.GenerateRequest:
    frame = pb.RawVideoFrame(**fields)
    return pb.GenerateRequest(video=pb.VideoInput(frame=frame))


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([_frame(data=b"\0" * 100, width=W, height=H, frame_rate=25)], "must name its format"),
        (
            [_frame(data=b"\0" * 100, format=1, width=W, height=H, frame_rate=25)],
            f"a {W}x{H} I420 frame is {W * H * 3 // 2} bytes",
        ),
        (
            [_frame(data=b"\0" * (9 * 8 * 3 // 2), format=1, width=9, height=8, frame_rate=25)],
            "even sides",
        ),
        (
            [_frame(data=b"\0" * (W * H * 3), format=2, width=W, height=H, frame_rate=0)],
            "frame rate",
        ),
        (
            [_raw(0, "i420"), _frame(data=b"\0" * (W * H * 3), format=2)],
            "changes the format",
        ),
        (
            [_raw(0, "i420"), _raw(1, "i420", 80_000, False), _raw(2, "i420", 40_000, False)],
            "not after the one before",
        ),
        (
            [_raw(0, "i420"), pb.GenerateRequest(video=pb.VideoInput(data=b"\0" * 64))],
            "send a file or raw frames",
        ),
    ],
    ids=["no-format", "bytes", "odd", "no-rate", "format-change", "time-order", "mixed"],
)
async def test_bad_raw_frames_are_refused_with_what_to_fix(client, requests, message):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _generate(client, requests + _audio(1.0))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
