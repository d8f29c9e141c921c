"""The output size follows the visual input unless the caller asks otherwise (issue 12, "the
source, untouched"): lipsync keeps its speaker video's size by default, every model keeps the
input's size with RESOLUTION_PRESET_SOURCE, and the pixels come through unscaled. Service tier:
the fake backend echoes lipsync's frames, so what comes out is the pipeline's framing only."""

from __future__ import annotations

import io

import av
import cv2
import grpc
import numpy as np
import pytest

from a2v_client import GenerateOptions, pcm_audio, request_stream
from a2v_server.settings import Settings

FPS = 10


def _texture(w: int, h: int, k: int) -> np.ndarray:
    """A real picture (the sample portrait, tiled to size), moved by a pixel a frame."""
    from media import PORTRAIT

    face = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    tiled = np.tile(face, (h // face.shape[0] + 2, w // face.shape[1] + 2, 1))
    return np.ascontiguousarray(tiled[k : k + h, k : k + w])


def _video(
    w: int, h: int, frames: int = 12, pix_fmt: str = "yuv444p"
) -> tuple[bytes, list[np.ndarray]]:
    """An H.264 clip of ``w`` x ``h`` (even sides: odd ones are cut by the encoder) and its
    frames as decoded (the reference the output is compared with)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(_texture(w, h, k), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = buf.getvalue()
    with av.open(io.BytesIO(data)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return data, decoded


async def _responses(client, options: GenerateOptions, *, video=None, image=None) -> list:
    """One generation with a second of silence, its responses (the client's own request
    stream: config, visual, audio, end)."""
    pcm = np.zeros(16000, "<i2").tobytes()
    audio = pcm_audio([pcm[i : i + 3200] for i in range(0, len(pcm), 3200)], 16000, 1)
    return [r async for r in client._stub.Generate(request_stream(options, image, audio, video))]


async def _render(client, options: GenerateOptions, video: bytes) -> list[np.ndarray]:
    """The decoded frames of a generation on ``video``."""
    responses = await _responses(client, options, video=video)
    data = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


async def test_lipsync_keeps_the_speaker_videos_size_and_pixels_by_default(client):
    data, source = _video(320, 200)
    out = await _render(client, GenerateOptions(model="lipsync"), data)
    assert out[0].shape == (200, 320, 3)  # not rescaled to 720p
    # every pixel is the source's, up to the H.264 re-encode
    assert min(_psnr(o, s) for o, s in zip(out, source, strict=False)) > 38


async def test_an_explicit_preset_still_rescales_lipsync(client):
    data, _ = _video(320, 200)
    out = await _render(client, GenerateOptions(model="lipsync", resolution="480p"), data)
    assert out[0].shape == (480, 768, 3)


@pytest.mark.parametrize("resolution", ["source", None])
async def test_an_odd_sided_video_loses_only_its_last_row(client, resolution):
    """A 320x201 video (the decoder gives 201 rows) comes back 320x200: the same pixels, the
    last row cut (H.264 needs even sides), never rescaled."""
    data, source = _video(320, 202)
    odd = _reencode_cut(data, 201)
    out = await _render(client, GenerateOptions(model="lipsync", resolution=resolution), odd)
    assert out[0].shape == (200, 320, 3)
    assert _psnr(out[3], source[3][:200]) > 36  # two encodes, no scaling


def _reencode_cut(data: bytes, rows: int) -> bytes:
    """The clip with its frames cut to ``rows`` rows (yuv444p allows odd sides)."""
    buf = io.BytesIO()
    with av.open(io.BytesIO(data)) as c, av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 320, rows, "yuv444p"
        for f in c.decode(video=0):
            img = np.ascontiguousarray(f.to_ndarray(format="rgb24")[:rows])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


async def test_source_keeps_a_portraits_size_for_the_avatar(client):
    from media import portrait_png

    png = portrait_png()
    height, width = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    responses = await _responses(client, GenerateOptions(resolution="source"), image=png)
    accepted = [r for r in responses if r.HasField("accepted")]
    assert (accepted[0].accepted.width, accepted[0].accepted.height) == (width, height)
    assert (width, height) != (960, 720)  # not what the default (720p) gives


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
async def test_a_source_over_the_pixel_rate_falls_back_by_default_and_is_refused_if_asked(
    serve, pix_fmt
):
    """The default (source) gives way to the largest preset within the server's output pixel
    rate: the whole source scaled (its framing kept, as a 4K phone video comes back at
    1080p), each frame the source's area-scaled picture; SOURCE asked for explicitly is
    refused, naming that preset."""
    from a2v_client import AsyncClient

    # 960x600 (576 000 px) is over 400 000 px a frame at 10 fps; 480p (768x480) is within
    settings = Settings(listen="127.0.0.1:0", max_output_pixel_rate=400_000 * FPS)
    data, source = _video(960, 600, pix_fmt=pix_fmt)
    async with serve(settings) as service, AsyncClient(service.address, timeout=60) as client:
        responses = await _responses(client, GenerateOptions(model="lipsync"), video=data)
        # the face was found in the scaled pictures, and is reported in the upload's pixels
        # (the fake face model's box: 35-65 % across, 30-70 % down the picture it is given)
        (accepted,) = [r.accepted for r in responses if r.HasField("accepted")]
        box = accepted.faces[0].box
        assert np.allclose((box.x0, box.y0, box.x1, box.y1), (336, 180, 624, 420), atol=1.0)
        stream = b"".join(r.chunk.data for r in responses if r.HasField("chunk"))
        with av.open(io.BytesIO(stream)) as c:
            out = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert out[0].shape == (480, 768, 3)
        for got, frame in zip(out, source, strict=False):
            expected = cv2.resize(frame, (768, 480), interpolation=cv2.INTER_AREA)
            assert _psnr(got, expected) > 33
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _render(client, GenerateOptions(model="lipsync", resolution="source"), data)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "960x600 at 10 fps" in info.value.details()
    assert "ask for 480p or less" in info.value.details()


class _BrightSquare:
    """Wraps a lipsync FakeAvatar that takes I420: it answers each frame with a 16x16 square
    of Y 235 at the window's (16, 16) (REGION there), as the real model answers with the box
    it changed."""

    def __init__(self, avatar) -> None:
        self._avatar = avatar

    def __getattr__(self, name):
        return getattr(self._avatar, name)

    async def batches(self):
        import dataclasses

        async for batch in self._avatar.batches():
            (ox, oy) = self._avatar.origins[batch.first_index] or (0, 0)
            square = np.full((24, 16), 128, np.uint8)  # packed I420 of 16x16: Y then U, V
            square[:16] = 235
            yield dataclasses.replace(
                batch,
                frames=np.stack([square] * len(batch.frames)),
                region=(ox + 16, oy + 16, ox + 32, oy + 32),
            )


@pytest.mark.parametrize(("height", "matrix"), [(200, 6), (720, 1)])
async def test_a_model_that_takes_i420_gets_the_sources_samples_and_only_its_box_changes(
    serve, height, matrix
):
    """The lipsync model that takes I420 gets the window's samples as decoded, packed I420
    with the source's matrix (untagged: BT.601 below 720 lines, BT.709 from 720), and what
    it sends back is copied in: its box changes, every other pixel is the source's."""
    from fake_backend import FakeBackend

    backend = FakeBackend()
    backend.i420 = True
    opened = backend.open_lipsync

    async def open_lipsync(options):
        return _BrightSquare(await opened(options))

    backend.open_lipsync = open_lipsync
    data, source = _video(320, height, frames=10, pix_fmt="yuv420p")  # kept as decoded
    async with serve(backend=backend) as service:
        from a2v_client import AsyncClient

        async with AsyncClient(service.address, timeout=60) as client:
            out = await _render(client, GenerateOptions(model="lipsync"), data)
    (options,) = backend.lipsync_options
    assert options.colour_matrix == matrix
    (avatar,) = backend.avatars
    crop = avatar.video_frames[0]
    assert crop.ndim == 2 and crop.shape[0] % 3 == 0  # packed I420: rows = height * 3 / 2
    with av.open(io.BytesIO(data)) as c:
        first = next(c.decode(video=0)).to_ndarray()  # the source's own I420
    (ox, oy), h = avatar.origins[0] or (0, 0), crop.shape[0] * 2 // 3
    np.testing.assert_array_equal(crop[:h], first[oy : oy + h, ox : ox + crop.shape[1]])
    assert out[0].shape == (height, 320, 3)
    for o, s in zip(out, source, strict=True):
        box = np.zeros(o.shape[:2], bool)
        box[oy + 16 : oy + 32, ox + 16 : ox + 32] = True
        assert o[box].mean() > 220  # the model's square (Y 235, grey)
        assert _psnr(o[~box], s[~box]) > 38  # the rest: the source, up to the re-encode
