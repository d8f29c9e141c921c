"""The visual input's limits with the fake backend: the output's pixel rate refused up front
with its numbers, a lipsync video's temporary disk no more than its upload, picture shapes
refused before any analysis, and a small face in a large photo found by the tiled pass."""

from __future__ import annotations

import io
import os
import tempfile

import av
import cv2
import numpy as np
import pytest
from fake_backend import FakeBackend
from media import portrait_png

from a2v_client import A2VClientError, AsyncClient, GenerateOptions, pcm_audio
from a2v_server.inference.backend import Face
from a2v_server.pipeline import faces as face_search
from a2v_server.settings import Settings

LOOPBACK = "127.0.0.1:0"


class MarkerBackend(FakeBackend):
    """Faces are pure red squares, found only when at least ``min_face`` pixels wide and whole
    in the analysed picture (a detector that cannot see small faces)."""

    def __init__(self, min_face: int = 60) -> None:
        super().__init__()
        self.min_face = min_face
        self.analysed: list[tuple[int, ...]] = []

    async def analyze_faces(self, image):
        self.analysed.append(image.shape)
        red = ((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(red)
        h, w = image.shape[:2]
        faces = []
        for x, y, bw, bh, _ in stats[1:n]:
            if bw >= self.min_face and x > 0 and y > 0 and x + bw < w and y + bh < h:
                box = (float(x), float(y), float(x + bw), float(y + bh))
                marks = np.tile(np.float32([[x + bw / 2, y + bh / 2]]), (68, 1))
                faces.append(Face(box, 1.0, marks))
        return faces


class TempFiles:
    """Every temporary file the server makes, and the largest size each reached."""

    def __init__(self) -> None:
        self.files: list = []

    def sizes(self) -> list[int]:
        return [os.fstat(f.fileno()).st_size if not f.closed else f.a2v_size for f in self.files]


@pytest.fixture
def temp_files(monkeypatch) -> TempFiles:
    seen = TempFiles()
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        handle = real(*args, **kwargs)
        seen.files.append(handle)
        close = handle.close

        def closing():
            if not handle.closed:
                handle.a2v_size = os.fstat(handle.fileno()).st_size
            close()

        handle.close = closing
        return handle

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    return seen


def _png(w: int, h: int, squares=()) -> bytes:
    img = np.full((h, w, 3), 128, np.uint8)
    for x, y, side in squares:
        img[y : y + side, x : x + side] = (255, 0, 0)
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def _video(frames: int, fps: int = 25, side: int = 64, seekable: bool = True) -> bytes:
    """A small H.264 clip; not seekable: Matroska written as a stream, without a duration."""

    class Pipe:  # a file object without seek: the muxer cannot go back to write the length
        def __init__(self) -> None:
            self.data = io.BytesIO()

        def write(self, b):
            return self.data.write(b)

    target = io.BytesIO() if seekable else Pipe()
    with av.open(target, "w", format="mp4" if seekable else "matroska") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            img = np.full((side, side, 3), k % 250, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target.getvalue() if isinstance(target, io.BytesIO) else target.data.getvalue()


def _audio(seconds: float = 1.0):
    pcm = np.zeros(int(16000 * seconds), "<i2").tobytes()
    return pcm_audio([pcm[i : i + 3200] for i in range(0, len(pcm), 3200)], 16000, 1)


async def _generate(address: str, **inputs) -> list:
    options = inputs.pop("options")
    async with AsyncClient(address, timeout=60) as client:
        return [r async for r in client.generate(audio=_audio(), options=options, **inputs)]


async def _refused(address: str, **inputs) -> A2VClientError:
    with pytest.raises(A2VClientError) as info:
        await _generate(address, **inputs)
    return info.value


# --- small faces in large photos ----------------------------------------------------------------
async def test_a_small_face_in_a_large_photo_is_found_by_tiles(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        image = _png(4000, 3000, [(3300, 2100, 100)])  # 32 px when downscaled: not found
        responses = await _generate(
            service.address, image=image, options=GenerateOptions(resolution="256x256")
        )
    assert responses[-1].summary.frames == 25
    assert backend.analysed[0] == (960, 1280, 3)
    assert backend.analysed[1:] == [(1280, 1280, 3)] * 12
    x0, y0, x1, y1 = (getattr(responses[0].accepted.face_box, k) for k in ("x0", "y0", "x1", "y1"))
    assert x1 - x0 == pytest.approx(256 / 8, abs=0.5)  # crop zooms in on the small face
    centre = backend.avatars[0].portrait[round((y0 + y1) / 2), round((x0 + x1) / 2)]
    assert centre.tolist() == [255, 0, 0]  # the face box is where the face is


async def test_no_face_even_in_tiles_states_the_real_smallest_face(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        error = await _refused(
            service.address,
            image=_png(4000, 3000, [(3300, 2100, 40)]),
            options=GenerateOptions(resolution="256x256"),
        )
    assert error.code == "INVALID_ARGUMENT"
    assert f"at least {face_search.SMALLEST_FACE} pixels wide" in error.message
    assert len(backend.analysed) == 13


async def test_a_thin_picture_is_refused_before_any_analysis(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        error = await _refused(
            service.address, image=portrait_png(16, 4000), options=GenerateOptions()
        )
    assert error.code == "INVALID_ARGUMENT"
    assert error.message == (
        "the portrait is 16x4000 pixels, 250 times as tall as it is wide; the limit is 4:1: "
        "crop it around the face (to at most 16x64)"
    )
    assert backend.analysed == []


async def test_a_face_too_small_to_animate_when_padded_is_refused(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        error = await _refused(
            service.address,
            image=_png(4000, 3000, [(3300, 2100, 100)]),
            options=GenerateOptions(resolution="256x256", fit="pad"),
        )
    assert error.code == "INVALID_ARGUMENT"
    assert error.message.startswith(
        "the face is 100 pixels wide in the 4000x3000 portrait and would be 6 in the 256x256 "
        "output, too small to animate (at least 16): use fit crop"
    )
    assert backend.avatars == []


# --- output pixel rate ---------------------------------------------------------------------------
async def test_a_4k_portrait_at_25_fps_is_refused_up_front(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        error = await _refused(
            service.address,
            image=_png(400, 300, [(150, 100, 100)]),
            options=GenerateOptions(resolution="3840x2160", fps=25),
        )
    assert error.code == "RESOURCE_EXHAUSTED"
    assert error.message.startswith(
        "3840x2160 at 25 fps is 207 Mpx/s of output, over the limit of 124 Mpx/s: ask for "
        "1080p or less"
    )
    assert backend.analysed == [] and backend.avatars == []


async def test_a_tiny_lipsync_video_at_4k_is_refused_before_any_analysis(serve):
    backend = MarkerBackend()
    async with serve(None, backend) as service:
        error = await _refused(
            service.address,
            video=_video(120),  # 64x64, 4.8 s at 25 fps: the attacker's 4.7 KB clip
            options=GenerateOptions(model="lipsync", resolution="3840x2160"),
        )
    assert error.code == "RESOURCE_EXHAUSTED"
    assert "3840x2160 at 25 fps (the video's frame rate) is 207 Mpx/s" in error.message
    assert backend.analysed == [] and backend.avatars == []


# --- temporary disk ------------------------------------------------------------------------------
@pytest.mark.parametrize("seekable", [True, False], ids=["mp4", "matroska-without-length"])
async def test_a_long_video_takes_no_more_temporary_disk_than_its_upload(
    serve, temp_files, seekable
):
    """No decoded frame is stored: a 2-second clip at 60 fps (120 frames, 5.9 MB raw at
    128x128) plays once through the 3 seconds of audio in bounce mode (backward play seeks in
    the compressed upload), and the only temporary file is the upload itself."""
    video = _video(120, fps=60, side=128, seekable=seekable)
    async with (
        serve(Settings(listen=LOOPBACK), FakeBackend()) as service,
        AsyncClient(service.address, timeout=60) as client,
    ):
        responses = [
            r
            async for r in client.generate(
                audio=_audio(3.0),
                video=video,
                options=GenerateOptions(model="lipsync", sync_mode="bounce"),
            )
        ]
    assert responses[-1].summary.frames == 180
    assert temp_files.sizes() == [len(video)]
