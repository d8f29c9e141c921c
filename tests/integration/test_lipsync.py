"""Lipsync through the real Triton: a speaker video in, the same video with a new mouth out."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import (
    PORTRAIT,
    bwdif_frames,
    decode_frames,
    duration,
    hdr_mp4,
    interlaced_mp4,
    probe,
)

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import file_audio

FPS = 30
BLACK = 6  # leading frames without a face


def _speaker_video(seconds: float) -> tuple[bytes, list[np.ndarray]]:
    """The portrait drifting slowly (a moving head), after a few black frames; MP4 at 30 fps."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    frames = []
    for k in range(round(seconds * FPS)):
        if k < BLACK:
            frames.append(np.zeros_like(portrait))
            continue
        dx = 6 * np.sin(k / 15)
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        frames.append(cv2.warpAffine(portrait, m, (512, 512), borderMode=cv2.BORDER_REFLECT))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "16"})
        stream.width = stream.height = 512
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    source = [
        f.to_ndarray(format="rgb24") for f in av.open(io.BytesIO(buf.getvalue())).decode(video=0)
    ]
    return buf.getvalue(), source


def _generate(stack, video, audio, out):
    """``a2v generate --video VIDEO --audio AUDIO -o OUT`` against the stack, finished."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [str(Path(sys.executable).parent / "a2v"), "--server", stack.address, "generate",
         "--video", str(video), "--audio", str(audio), "-o", str(out)],
        capture_output=True, timeout=300,
    )  # fmt: skip


def _generate_warned(stack, video, audio, tmp_path, warning: bytes) -> tuple[dict, list]:
    """``_generate`` to ``tmp_path/clip.mp4``, which must succeed with the CLI printing the
    server's Accepted ``warning`` about ``--video``; the clip's video stream (ffprobe) and its
    decoded frames (at least 40)."""
    clip = tmp_path / "clip.mp4"
    done = _generate(stack, video, audio, clip)
    assert done.returncode == 0, done.stderr
    assert b"a2v: warning: --video: " + warning in done.stderr, done.stderr
    (stream,) = [s for s in probe(clip)["streams"] if s["codec_type"] == "video"]
    out = decode_frames(clip)
    assert len(out) >= 40
    return stream, out


def _small_speaker() -> list[np.ndarray]:
    """50 frames, 256x256 RGB: the portrait at half size, drifting 4 px side to side."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    frames = []
    for k in range(50):
        m = np.float32([[0.5, 0, 4 * np.sin(k / 15)], [0, 0.5, 0]])
        frames.append(cv2.warpAffine(portrait, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def test_lipsync_reanimates_only_the_mouth(stack, client, pause_speech, tmp_path):
    video, source = _speaker_video(2.0)  # shorter than the audio: bounce (default)

    def requests():
        # no resolution: lipsync keeps the speaker video's size (and so its pixels)
        yield pb.GenerateRequest(config=pb.GenerateConfig(model="lipsync"))
        for i in range(0, len(video), 64 * 1024):
            yield pb.GenerateRequest(video=pb.VideoInput(data=video[i : i + 64 * 1024]))
        for chunk in file_audio(pause_speech):
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    responses = list(client._stub.Generate(requests(), timeout=300))
    out = tmp_path / "lipsync.mp4"
    out.write_bytes(b"".join(r.chunk.data for r in responses if r.HasField("chunk")))
    accepted = responses[0].accepted
    assert accepted.model == "lipsync" and accepted.fps == FPS  # source rate kept
    assert (accepted.width, accepted.height) == (512, 512)  # and the source's size
    assert sorted(s["codec_name"] for s in probe(out)["streams"]) == ["aac", "h264"]
    assert abs(duration(out) - duration(pause_speech)) <= 1 / FPS + 0.03

    frames = decode_frames(out)
    n_src = len(source)
    assert len(frames) == round(duration(pause_speech) * FPS)
    # bounce: output frame i shows source frame k(i)
    period = 2 * n_src - 2
    mapped = [
        source[(i % period) if i % period < n_src else period - i % period]
        for i in range(len(frames))
    ]
    # frames without a face pass through unchanged (up to the codec)
    assert all(_psnr(frames[i], mapped[i]) > 38 for i in range(BLACK - 1))

    box = accepted.face_box
    x0, x1 = int(box.x0) - 10, int(box.x1) + 10
    mouth_y0, mouth_y1 = int(box.y0 + 0.55 * (box.y1 - box.y0)), int(box.y1 + 30)
    outside = np.ones((512, 512), bool)
    outside[int(box.y0) - 10 : mouth_y1 + 40, x0:x1] = False  # the face, jaw and a margin
    psnr_outside = [_psnr(frames[i][outside], mapped[i][outside]) for i in range(len(frames))]
    assert np.median(psnr_outside) > 38 and min(psnr_outside) > 35, sorted(psnr_outside)[:5]

    change = np.array(
        [
            np.abs(
                frames[i][mouth_y0:mouth_y1, x0:x1].astype(int)
                - mapped[i][mouth_y0:mouth_y1, x0:x1]
            ).mean()
            for i in range(len(frames))
        ]
    )
    speech = change[int(1.3 * FPS) : int((duration(pause_speech) - 1.6) * FPS)]
    assert speech.max() > 8, "the mouth must be re-animated during speech"
    assert (speech > 3).mean() > 0.3

    # the model's MOUTH_SOURCE, counted: every frame took one path
    summary = responses[-1].summary
    m = summary.mouth_sources
    assert summary.HasField("mouth_sources"), summary
    assert m.passed_through + m.warped + m.retrieved == summary.frames == len(frames), m
    assert m.passed_through >= BLACK - 1  # the black frames at the start, at least
    assert m.warped + m.retrieved > len(frames) // 2, m


def test_cli_lipsync_with_sync_mode_and_timeline(stack, short_speech, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    video, source = _speaker_video(0.8)  # shorter than the speech
    src = tmp_path / "speaker.mp4"
    src.write_bytes(video)
    out, timeline = tmp_path / "cli.mp4", tmp_path / "timeline.jsonl"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "a2v"),
            "--server",
            stack.address,
            "generate",
            "--video",
            str(src),
            "--audio",
            str(short_speech),
            "--sync-mode",
            "cut_off",
            "--resolution",
            "256x256",
            "--timeline",
            str(timeline),
            "-o",
            str(out),
        ],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    mouth = [line for line in done.stderr.splitlines() if line.startswith(b"a2v: mouth: ")]
    assert len(mouth) == 1 and b" warped, " in mouth[0], done.stderr
    # cut_off: the shorter input wins, here the video
    assert len(decode_frames(out)) == len(source)
    assert abs(duration(out) - len(source) / FPS) <= 1 / FPS + 0.03
    *rows, last = [json.loads(line) for line in timeline.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(source)))
    assert set(last) == {"beat_grid"}  # the audio's beat grid ends the file
    assert all(0.0 <= r["mouth_open"] <= 1.0 for r in rows)


def test_a_video_larger_than_its_output_is_scaled_where_it_is_decoded(
    stack, short_speech, tmp_path
):
    """A speaker video twice its output's size (a 4K phone video under a 1080p output, here
    512 -> 256): the clip is the source scaled down, away from the mouth within the H.264
    re-encode of its area-scaled pictures, and the mouth is still re-animated there."""
    import subprocess
    import sys
    from pathlib import Path

    video, source = _speaker_video(1.0)
    src = tmp_path / "speaker.mp4"
    src.write_bytes(video)
    out = tmp_path / "small.mp4"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "a2v"), "--server", stack.address, "generate",
         "--video", str(src), "--audio", str(short_speech), "--sync-mode", "cut_off",
         "--resolution", "256x256", "-o", str(out)],
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frames = decode_frames(out)
    assert len(frames) == len(source) and frames[0].shape == (256, 256, 3)
    scaled = [cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in source]
    below = np.s_[185:, :]  # the suit: away from the face and its jaw
    psnr = [_psnr(o[below], s[below]) for o, s in zip(frames, scaled, strict=True)]
    assert min(psnr) > 35, sorted(psnr)[:3]
    # the mouth moved: somewhere around it, the clip is not the scaled source
    mouth = np.s_[120:185, 80:180]
    pairs = zip(frames, scaled, strict=True)
    changed = [np.abs(o[mouth].astype(int) - s[mouth]).max() for o, s in pairs]
    assert max(changed[BLACK:]) > 40


def test_a_video_that_opens_without_a_face_is_framed_on_the_face_that_comes(
    stack, short_speech, tmp_path
):
    """A 1280x720 video whose speaker, on the left of the picture, comes after a title card
    (BLACK frames), cropped to 360x640 (9:16): the server's framing probe finds her in a later
    frame (analysed smaller than the first one: visual.PROBE_SIDE) and the crop is centred on
    her face (x ~ 160 of the source), not on the picture (x 438)."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[60:660, 60:660] = cv2.resize(portrait, (600, 600), interpolation=cv2.INTER_AREA)
    frames = [np.zeros_like(canvas)] * BLACK + [canvas] * 40
    src = tmp_path / "speaker.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "16"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    clip = tmp_path / "vertical.mp4"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "a2v"), "--server", stack.address, "generate",
         "--video", str(src), "--audio", str(short_speech), "--sync-mode", "cut_off",
         "--aspect", "9:16", "--resolution", "360x640", "-o", str(clip)],
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = decode_frames(clip)[BLACK + 10]
    assert shown.shape == (640, 360, 3)
    # where in the source (scaled by 640/720) the clip's window lies: the best match of its
    # upper half (hair, eyes, background; the mouth below is re-animated)
    scaled = cv2.resize(canvas, (1138, 640), interpolation=cv2.INTER_AREA).astype(np.float32)
    top = shown[:300].astype(np.float32)
    errors = [np.mean((scaled[:300, x : x + 360] - top) ** 2) for x in range(0, 1138 - 360)]
    x0 = int(np.argmin(errors)) * 720 / 640  # in the source's pixels
    assert abs(x0 - 158) < 40, x0


def test_a_cut_off_upload_is_rendered_and_reported(stack, short_speech, tmp_path):
    """A speaker video cut off partway (an upload that stopped, a half-copied file): the clip
    is made from the pictures before the cut, as long as the audio, and the CLI prints the
    server's Summary warning that says where the data ended; a whole upload has no warning."""
    import subprocess
    import sys
    from pathlib import Path

    video, _ = _speaker_video(2.0)
    whole = tmp_path / "whole.mp4"
    with (
        av.open(io.BytesIO(video)) as src,
        av.open(str(whole), "w", format="mp4", options={"movflags": "+faststart"}) as dst,
    ):  # the index first, as files made for the web: the front half decodes
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    a2v = str(Path(sys.executable).parent / "a2v")
    for src, warned in ((cut, True), (whole, False)):
        out = tmp_path / f"out-{src.stem}.mp4"
        done = subprocess.run(
            [a2v, "--server", stack.address, "generate", "--video", str(src), "--audio",
             str(short_speech), "--resolution", "256x256", "-o", str(out)],
            capture_output=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        warnings = [
            line for line in done.stderr.decode().splitlines() if line.startswith("a2v: warning:")
        ]
        if warned:
            assert len(warnings) == 1, done.stderr
            assert warnings[0].startswith("a2v: warning: --video: its data ends at ")
            assert "of the 2.00 s its header declares" in warnings[0]
        else:
            assert not warnings, done.stderr
        # the clip is whole: as long as the audio, every frame decodes
        assert abs(duration(out) - duration(short_speech)) <= 2 / FPS + 0.03
        assert len(decode_frames(out)) >= round(duration(short_speech) * FPS) - 1


def test_a_120_fps_phone_video_plays_at_60(stack, short_speech, tmp_path):
    """A phone's 120 fps video is not refused: the clip is at 60 fps (every 2nd picture) and
    the CLI prints the server's Accepted warning that says so."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    src = tmp_path / "phone.mp4"
    with av.open(str(src), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=120, options={"preset": "ultrafast"})
        stream.width = stream.height = 512
        stream.pix_fmt = "yuv420p"
        for k in range(240):
            m = np.float32([[1, 0, 6 * np.sin(k / 60)], [0, 1, 0]])
            moved = cv2.warpAffine(portrait, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(moved, format="rgb24")))
        out.mux(stream.encode(None))
    clip = tmp_path / "clip.mp4"
    done = _generate(stack, src, short_speech, clip)
    assert done.returncode == 0, done.stderr
    assert (
        b"a2v: warning: --video: its frame rate, 120 fps, is above 60: the clip is at 60 fps, "
        b"every 2nd picture" in done.stderr
    ), done.stderr
    (video,) = [s for s in probe(clip)["streams"] if s["codec_type"] == "video"]
    assert video["r_frame_rate"] == "60/1"
    assert abs(duration(clip) - duration(short_speech)) <= 2 / 60 + 0.03
    assert len(decode_frames(clip)) >= round(duration(short_speech) * 60) - 1


def test_a_phones_hdr_video_comes_back_as_an_sdr_screen_shows_it(stack, short_speech, tmp_path):
    """An HLG speaker video (a phone's default HDR: BT.2020, 10-bit) comes back as SDR BT.709,
    away from the mouth as an SDR screen shows the upload, and the CLI prints the server's
    Accepted warning that says so. (Read as SDR, as before, the clip came back dark and dull,
    20 dB from the original.)"""
    sdr = _small_speaker()
    src = tmp_path / "phone-hlg.mp4"
    src.write_bytes(hdr_mp4(sdr, "arib-std-b67"))
    video, out = _generate_warned(
        stack, src, short_speech, tmp_path, b"it is HDR (HLG); the clip is SDR BT.709"
    )
    assert (video["width"], video["height"], video["pix_fmt"]) == (256, 256, "yuv420p")
    assert video["r_frame_rate"] == "25/1"  # the upload's own rate
    assert video.get("color_transfer") == "bt709" and video.get("color_primaries") == "bt709"
    # away from the face (the shuttle and flag to its right, the suit below), as the SDR
    # original shows them: 38 / 33 dB here (the suit's saturated orange loses most in the
    # round trip through BT.2020 and 4:2:0), 20 dB read as SDR
    for region, floor in ((np.s_[:, 170:], 35), (np.s_[130:, :], 30)):
        assert min(_psnr(o[region], s[region]) for o, s in zip(out, sdr, strict=False)) >= floor


def test_a_video_of_non_square_pixels_comes_back_as_players_show_it(stack, short_speech, tmp_path):
    """An anamorphic speaker video (DV, HDV: here 192x256 stored at 4:3, shown 256x256) comes
    back at its shown size in square pixels, the face in its true proportions away from the
    mouth, and the CLI prints the server's Accepted warning that says so. (Before, the clip was
    192x256 in square pixels: every face a quarter too narrow.)"""
    import subprocess

    shown = _small_speaker()
    stored = np.stack([cv2.resize(f, (192, 256), interpolation=cv2.INTER_AREA) for f in shown])
    src = tmp_path / "anamorphic.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "192x256",
         "-r", "25", "-i", "-", "-vf", "setsar=4/3", "-c:v", "libx264", "-crf", "12",
         "-pix_fmt", "yuv420p", str(src)],
        input=stored.tobytes(), check=True, capture_output=True,
    )  # fmt: skip
    warning = b"its pixels are not square (sample aspect ratio 4:3, 192x256 stored)"
    video, out = _generate_warned(stack, src, short_speech, tmp_path, warning)
    assert (video["width"], video["height"]) == (256, 256)
    assert video.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    # away from the face (the shuttle and flag to its right), as shown: 192 columns widened to
    # 256 lose a little detail (31 dB here); read as square pixels nothing was in its place
    region = np.s_[:, 175:]
    assert min(_psnr(o[region], s[region]) for o, s in zip(out, shown, strict=False)) >= 28


def test_an_interlaced_video_comes_back_deinterlaced(stack, short_speech, tmp_path):
    """A speaker video shot interlaced (broadcast 1080i, HDV, DV: two fields of different
    instants woven into each frame) comes back progressive at its own size and frame rate, its
    pictures as a player shows them (FFmpeg's bwdif), and the CLI prints the server's Accepted
    warning that says so. (Before, the woven fields were kept in a clip flagged progressive:
    combs on every moving edge.)"""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    fields = []
    for k in range(100):  # 50 fields a second, the head swaying 3 px a field at most
        m = np.float32([[0.5, 0, 12 * np.sin(k / 4)], [0, 0.5, 0]])
        fields.append(cv2.warpAffine(portrait, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
    src = interlaced_mp4(np.stack(fields), tmp_path / "interlaced.mp4")
    reference = bwdif_frames(src)
    woven = decode_frames(src)
    video, out = _generate_warned(
        stack, src, short_speech, tmp_path, b"it is interlaced; the clip is progressive"
    )
    assert (video["width"], video["height"], video["r_frame_rate"]) == (256, 256, "25/1")
    assert video.get("field_order", "progressive") == "progressive"
    # away from the face (the shuttle and flag to its right): the deinterlaced pictures, not
    # the woven ones
    region = np.s_[:, 175:]
    pairs = list(zip(out, reference, woven, strict=False))
    assert min(_psnr(o[region], r[region]) for o, r, _ in pairs) >= 35
    assert np.mean([_psnr(o[region], w[region]) for o, _, w in pairs]) <= 30


@pytest.mark.parametrize(
    ("container", "codec", "warning"),
    [
        # a camera's or an editor's intermediate: ProRes 422 HQ, 10-bit 4:2:2
        ("mov", ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"],
         b"it is 10-bit 4:2:2; the clip is 8-bit 4:2:0 limited-range H.264"),
        # a phone or screen recorder writing full-range H.264 (0-255)
        ("mp4", ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuvj420p", "-color_range", "pc"],
         b"it is 8-bit 4:2:0 full range; the clip is 8-bit 4:2:0 limited-range H.264"),
        # a webcam's Motion JPEG: full range, 4:2:2, JPEG's BT.601 matrix
        ("mov", ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj422p", "-colorspace", "bt470bg"],
         b"it is 8-bit 4:2:2 full range; the clip is 8-bit 4:2:0 limited-range H.264"),
    ],
    ids=["prores-10bit-422", "full-range-h264", "webcam-mjpeg"],
)  # fmt: skip
def test_a_video_of_other_sampling_comes_back_as_players_show_it(
    stack, short_speech, tmp_path, container, codec, warning
):
    """A speaker video that is not 8-bit 4:2:0 limited range comes back at its own size and rate
    as 8-bit 4:2:0 limited-range H.264 (what browsers take), looking as players show the
    upload away from the mouth, and the CLI prints the server's Accepted warning that says so.
    Its pictures are converted once as they are decoded and then take the same path as an
    ordinary upload's (media/yuv.converted_colour); a range or matrix read wrongly would shift
    every colour (full range read as limited: ~22 dB here)."""
    import subprocess

    shown = _small_speaker()
    src = tmp_path / f"speaker.{container}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "256x256",
         "-r", "25", "-i", "-", "-vf",
         f"scale=out_color_matrix={'bt601' if 'bt470bg' in codec else 'bt709'}:out_range="
         + ("pc" if b"full range" in warning else "tv"), "-colorspace", "bt709", *codec,
         str(src)],
        input=np.stack(shown).tobytes(), check=True, capture_output=True,
    )  # fmt: skip
    video, out = _generate_warned(stack, src, short_speech, tmp_path, warning)
    assert (video["width"], video["height"], video["r_frame_rate"]) == (256, 256, "25/1")
    assert video["pix_fmt"] == "yuv420p" and video.get("color_range", "tv") == "tv"
    # away from the face (the shuttle and flag to its right), as the original
    region = np.s_[:, 175:]
    assert min(_psnr(o[region], s[region]) for o, s in zip(out, shown, strict=False)) >= 36
