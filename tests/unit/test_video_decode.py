"""Tests of a2v_server.media.video: speaker videos come out as a player shows them (display
matrix rotation and mirroring applied, the output size following it), the decoder is bounded
by the pixel limit whatever the headers say, and errors say what to send."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hostile.hostile_media import displayed_video
from media import bwdif_frames, interlaced_mp4

from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media import video as video_mod
from a2v_server.media.spool import Spool
from a2v_server.media.video import SourceVideo
from a2v_server.media.yuv import BT709, Converter

H, W = 48, 80


def _quadrants() -> np.ndarray:
    """An upright 80x48 picture: red, green / blue, white quadrants (top-left is red)."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[: H // 2, : W // 2] = (255, 0, 0)
    rgb[: H // 2, W // 2 :] = (0, 255, 0)
    rgb[H // 2 :, : W // 2] = (0, 0, 255)
    rgb[H // 2 :, W // 2 :] = (255, 255, 255)
    return rgb


def _assert_quadrants(rgb: np.ndarray) -> None:
    assert rgb.shape == (H, W, 3)
    h, w = H // 2, W // 2
    for (y, x), colour in {
        (0, 0): (255, 0, 0),
        (0, 1): (0, 255, 0),
        (1, 0): (0, 0, 255),
        (1, 1): (255, 255, 255),
    }.items():
        block = rgb[y * h + 4 : (y + 1) * h - 4, x * w + 4 : (x + 1) * w - 4].reshape(-1, 3)
        assert np.abs(block.astype(int) - colour).mean(axis=0).max() < 24, (y, x)


def _ffmpeg(*args: str) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", *args], check=True, capture_output=True).stdout


@contextmanager
def _whole(data: bytes, *, max_pixels: int = 1_000_000, max_frames: int = 100):
    """A SourceVideo over a whole upload (all its bytes there), closed after."""
    spool = Spool(max_bytes=10**8)
    video = SourceVideo(spool, max_pixels=max_pixels, max_frames=max_frames)
    try:
        spool.write(data)
        spool.finish()
        yield video
    finally:
        video.close()
        spool.close()


def _frames(
    data: bytes,
    *,
    max_pixels: int = 1_000_000,
    max_frames: int = 100,
    decode_at: tuple[int, int] | None = None,
):
    """(rate, header frame count, every slot's picture as RGB) of a whole upload; with
    ``decode_at``, at that size (SourceVideo.decode_at, once open)."""
    with _whole(data, max_pixels=max_pixels, max_frames=max_frames) as video:
        info = video.open()
        if decode_at is not None:
            info = video.decode_at(*decode_at)
        converter = Converter(info.colour or BT709)
        frames = []
        while (picture := video.frame(len(frames))) is not None:
            if picture.rgb is not None:
                frames.append(picture.rgb)
            else:
                frames.append(converter.to_rgb(picture.i420))
        return info.rate, info.header_frames, frames


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
@pytest.mark.parametrize("hflip", [False, True], ids=["", "mirrored"])
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_display_matrix_rotation_and_mirroring_are_applied(fmt, degrees, hflip):
    # stored turned and mirrored; the display matrix says how to show it: upright, 80x48
    data = displayed_video([_quadrants()] * 3, degrees, hflip=hflip, fmt=fmt)
    _, _, frames = _frames(data)
    assert len(frames) == 3
    for frame in frames:
        _assert_quadrants(frame)


@pytest.mark.parametrize("degrees", [90, 270])
def test_a_turned_video_decoded_at_half_its_size_comes_out_upright(degrees, monkeypatch):
    """A phone's portrait video (stored turned, a display matrix to show it upright) decoded
    at half its upright size (SourceVideo.decode_at): upright pictures of that size, scaled
    where they are decoded (only the two made before the change are scaled again after)."""
    import cv2

    rescaled = []
    scaled = video_mod._Shape.scaled
    monkeypatch.setattr(
        video_mod._Shape, "scaled", lambda shape, p: rescaled.append(p) or scaled(shape, p)
    )
    data = displayed_video([_quadrants()] * 6, degrees)
    _, _, frames = _frames(data, decode_at=(W // 2, H // 2))
    assert len(frames) == 6 and len(rescaled) <= 2
    for frame in frames:
        assert frame.shape == (H // 2, W // 2, 3)
        _assert_quadrants(cv2.resize(frame, (W, H), interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("degrees", [90, 270])
def test_rotation_agrees_with_the_ffmpeg_command_line(tmp_path: Path, degrees):
    """An independent reference: the ffmpeg CLI turns rotated videos upright by itself."""
    path = tmp_path / "rotated.mp4"
    path.write_bytes(displayed_video([_quadrants()] * 2, degrees))
    raw = _ffmpeg("-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    reference = np.frombuffer(raw, np.uint8).reshape(H, W, 3)
    _assert_quadrants(reference)
    _, _, frames = _frames(path.read_bytes())
    assert np.abs(frames[0].astype(int) - reference).mean() < 4


def test_a_video_without_a_display_matrix_is_unchanged():
    _, _, frames = _frames(displayed_video([_quadrants()] * 2, 0))
    _assert_quadrants(frames[0])


def test_a_frame_size_change_midway_keeps_the_first_size(tmp_path: Path):
    """An H.264 stream whose second half is 320x240 (a new SPS): the decoder makes bigger
    frames than the header said; they are scaled to the first size, or, over the pixel limit,
    never decoded (the codec context is bounded) and the video ends there."""
    parts = []
    for name, size in (("a", "64x48"), ("b", "320x240")):
        part = tmp_path / f"{name}.h264"
        source = f"testsrc=size={size}:rate=10:duration=0.5"
        _ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-f", "h264", str(part))
        parts.append(part.read_bytes())
    (tmp_path / "ab.h264").write_bytes(b"".join(parts))
    both, mp4 = tmp_path / "ab.h264", tmp_path / "ab.mp4"
    _ffmpeg("-framerate", "10", "-f", "h264", "-i", str(both), "-c", "copy", str(mp4))
    data = mp4.read_bytes()
    _, _, frames = _frames(data)
    assert len(frames) > 5  # both halves
    assert {f.shape for f in frames} == {(48, 64, 3)}
    _, _, frames = _frames(data, max_pixels=10_000)  # 64x48 fits, 320x240 does not
    assert frames and {f.shape for f in frames} == {(48, 64, 3)}


def test_every_decoded_frame_is_checked_against_the_limit():
    video = SourceVideo(Spool(max_bytes=1), max_pixels=5000, max_frames=10)
    small = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    bigger = av.VideoFrame.from_ndarray(np.zeros((60, 80, 3), np.uint8), format="rgb24")
    assert video._picture(small).rgb.shape == (48, 64, 3)
    assert video._picture(bigger).rgb.shape == (48, 64, 3)  # scaled to the first frame's size
    huge = av.VideoFrame.from_ndarray(np.zeros((100, 100, 3), np.uint8), format="rgb24")
    with pytest.raises(ResourceExhausted, match="100x100"):
        video._picture(huge)


def test_the_decoder_is_bounded_not_only_the_header(monkeypatch):
    """Were the container's size check fooled, the codec context still refuses the frames."""
    data = displayed_video([_quadrants()] * 2, 0)
    options = []
    real_open = SourceVideo._open

    def spy(self, reader):
        container, stream = real_open(self, reader)
        options.append(dict(stream.codec_context.options))  # as the decoder will be opened
        return container, stream

    monkeypatch.setattr(SourceVideo, "_open", spy)
    _frames(data, max_pixels=1_000_000)
    assert options and options[0]["max_pixels"] == "1000000"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (lambda v: v[: len(v) // 2], "could not read the video"),
        (lambda v: v[:100], "could not read the video"),
        (lambda v: b"\x1a\x45\xdf\xa3" + bytes(300), "could not read the video"),
    ],
    ids=["cut-half", "cut-100", "matroska-magic-then-zeros"],
)
def test_broken_videos_say_what_to_send_not_ffmpeg_text(data, phrase):
    with pytest.raises(InvalidInput) as err:
        _frames(data(displayed_video([_quadrants()] * 5, 90)))
    message = err.value.message
    assert phrase in message and "send a complete MP4, MOV or WebM/Matroska file" in message
    for internal in ("Errno", "Invalid data found", "avformat", "avcodec", "moov atom"):
        assert internal not in message
    assert err.value.field == "video"


def test_decoding_stops_when_timestamps_never_advance():
    """Frames that all show at t=0 fill no output slot: decoding stops at twice the limit."""

    class Frozen:
        decoded = 0

        def decode(self, _stream):
            while True:
                frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), "rgb24")
                frame.pts, frame.time_base = 0, Fraction(1, 10)
                self.decoded += 1
                yield frame

    container = Frozen()
    video = SourceVideo(Spool(max_bytes=1), max_pixels=10**6, max_frames=5)
    run = video_mod._Pass(video, container, None, Fraction(10), start=None)
    slots = []
    while (item := run.next()) is not None:
        slots.append(item[0])
    assert slots == [0] and container.decoded == 11


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
@pytest.mark.parametrize(
    ("stored", "sar"), [((60, 48), "4/3"), ((80, 36), "3/4")], ids=["wide pixels", "tall pixels"]
)
def test_non_square_pixels_come_out_square_at_the_displayed_shape(tmp_path, fmt, stored, sar):
    """A video of non-square pixels (DV, HDV: 60x48 stored at 4:3 is shown 80x48) comes out as
    a player shows it, in square pixels: 80x48, each quadrant where it is shown, as the ffmpeg
    command line scales it; its size is the video's (VideoInfo) for the output to keep."""
    import cv2

    path = tmp_path / f"anamorphic.{'mkv' if fmt == 'matroska' else fmt}"
    squeezed = cv2.resize(_quadrants(), stored, interpolation=cv2.INTER_AREA)
    raw = np.ascontiguousarray(np.stack([squeezed] * 3))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
         f"{stored[0]}x{stored[1]}", "-r", "10", "-i", "-", "-vf", f"setsar={sar}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        input=raw.tobytes(), check=True, capture_output=True,
    )  # fmt: skip
    scaled = _ffmpeg(
        "-i", str(path), "-frames:v", "1", "-vf", r"scale=w=iw*max(sar\,1):h=ih/min(sar\,1)",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    )  # fmt: skip
    reference = np.frombuffer(scaled, np.uint8).reshape(H, W, 3)
    with _whole(path.read_bytes()) as video:
        info = video.open()
        assert (info.width, info.height) == (W, H)
    _, _, frames = _frames(path.read_bytes())
    assert len(frames) == 3
    for frame in frames:
        _assert_quadrants(frame)
    assert np.abs(frames[0].astype(int) - reference).mean() < 6


def _comb(grey: np.ndarray) -> float:
    """Mean |row - mean of the rows above and below|: high where two instants are woven (the
    comb of an interlaced frame that moves), low in a picture of one instant."""
    y = grey.astype(np.float32)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


def test_interlaced_video_is_deinterlaced_as_players_show_it(tmp_path):
    """Broadcast and camcorder video (1080i, HDV, DV) weaves two fields of different instants
    into each frame. Its pictures come out progressive, as FFmpeg's bwdif makes them (what a
    player shows): the combs of the moving picture gone, the frame count and rate kept, and
    VideoInfo says so (for the Accepted warning). A progressive video is not touched."""
    # a white bar crossing a dark picture, 4 px a field (50 fields a second): woven, its edges
    # are combs on every other row
    fields = np.full((60, 96, 160, 3), 40, np.uint8)
    for k, field in enumerate(fields):
        field[16:80, 10 + 4 * k : 22 + 4 * k] = 230
    path = interlaced_mp4(fields, tmp_path / "interlaced.mp4")
    reference = bwdif_frames(path, "gray")
    woven = np.stack([f.to_ndarray(format="gray") for f in av.open(str(path)).decode(video=0)])
    with _whole(path.read_bytes()) as video:
        assert video.open().interlaced
    rate, _, frames = _frames(path.read_bytes())
    assert rate == 25 and len(frames) == len(woven) == len(reference) == 30
    greys = [f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) for f in frames]
    assert np.mean([_comb(g) for g in greys]) < 0.5 * np.mean([_comb(w) for w in woven])
    # each picture is the one ffmpeg's bwdif shows (up to the RGB round trip), in order
    for grey, ref in zip(greys, reference, strict=True):
        assert np.abs(grey - ref).mean() < 4

    progressive = tmp_path / "progressive.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25", "-t", "0.4", "-c:v", "libx264",
        "-pix_fmt", "yuv420p", str(progressive),
    )  # fmt: skip
    with _whole(progressive.read_bytes()) as video:
        assert not video.open().interlaced
        picture = video.frame(3)
        assert picture is not None and picture.i420 is not None
        decoded = list(av.open(str(progressive)).decode(video=0))[3].to_ndarray(format="yuv420p")
        assert np.array_equal(picture.i420, decoded)


def test_frames_the_deinterlacer_cannot_take_pass_as_they_are(tmp_path, monkeypatch):
    """Where FFmpeg cannot build the deinterlacing filter for a video's frames, they come out
    woven, as before there was one: the upload is not refused for it."""
    fields = np.full((8, 48, 64, 3), 40, np.uint8)
    path = interlaced_mp4(fields, tmp_path / "interlaced.mp4")
    woven = [f.to_ndarray(format="yuv420p") for f in av.open(str(path)).decode(video=0)]

    def refused(*_args, **_kwargs):
        raise av.error.FFmpegError(22, "Invalid argument")

    monkeypatch.setattr(video_mod, "filter_chain", refused)
    out = list(video_mod.Deinterlacer().frames(av.open(str(path)).decode(video=0)))
    assert [f.to_ndarray(format="yuv420p").tobytes() for f in out] == [w.tobytes() for w in woven]


@pytest.mark.parametrize(
    ("codec", "sampling"),
    [
        (["-c:v", "prores_ks", "-pix_fmt", "yuv422p10le", "-f", "mov"], "10-bit 4:2:2"),
        (["-c:v", "libx264", "-pix_fmt", "yuv444p", "-f", "mp4"], "8-bit 4:4:4"),
        (["-c:v", "libx264", "-pix_fmt", "yuvj420p", "-color_range", "pc", "-f", "mp4"],
         "8-bit 4:2:0 full range"),
        # full range flagged in the stream, not in the pixel format (VP9, HEVC decode so)
        (["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-color_range", "pc", "-f", "webm"],
         "8-bit 4:2:0 full range"),
        # JPEG's own matrix: BT.601, as webcams write it
        (["-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-colorspace", "bt470bg", "-f", "mov"],
         "8-bit 4:2:2 full range"),
        (["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4"], None),
    ],
    ids=["prores-10bit-422", "444", "full-range", "full-range-vp9", "mjpeg", "420-kept"],
)  # fmt: skip
def test_other_samplings_are_converted_once_to_limited_range_420(tmp_path, codec, sampling):
    """A video that is not 8-bit 4:2:0 limited range (ProRes, 4:4:4, full-range phones and
    webcams) comes out as I420 in its own matrix, 8-bit limited range (what the H.264 clip
    carries), so that only the face is ever converted to RGB; its colours are the video's as
    FFmpeg shows them (a range read wrongly moves every level by up to 16 / 20 here).
    VideoInfo.converted names the sampling (the Accepted warning); 4:2:0 limited range is kept
    as it is."""
    path = tmp_path / "video"
    raw = np.ascontiguousarray(np.stack([_quadrants()] * 3))
    range_ = "pc" if sampling and "full" in sampling else "tv"
    matrix = "bt601" if "bt470bg" in codec else "bt709"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
         "-r", "10", "-i", "-", "-vf", f"scale=out_color_matrix={matrix}:out_range={range_}",
         "-colorspace", "bt709", *codec, str(path)],
        input=raw.tobytes(), check=True, capture_output=True,
    )  # fmt: skip
    shown = np.frombuffer(
        _ffmpeg("-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
        np.uint8,
    ).reshape(H, W, 3)
    with _whole(path.read_bytes()) as video:
        info = video.open()
        assert info.converted == sampling
        assert info.colour is not None
        picture = video.frame(0)
        assert picture is not None and picture.i420 is not None and picture.rgb is None
        assert picture.i420.dtype == np.uint8 and picture.i420.shape == (H * 3 // 2, W)
        # limited range: black and white at 16 / 235 in Y, not 0 / 255
        assert 225 <= picture.i420[H // 2 + 4 : H - 4, W // 2 + 4 : W - 4].mean() <= 240
        rgb = Converter(info.colour).to_rgb(picture.i420)
    _assert_quadrants(rgb)
    assert np.abs(rgb.astype(int) - shown).mean() < 3
