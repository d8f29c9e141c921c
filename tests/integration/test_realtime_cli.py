"""``a2v generate --realtime``: the CLI sends the audio like a live source (raw PCM, paced in
real time) and the video starts coming back while the audio is still being sent."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from helpers import a2v_command, generate_args
from media import decode_frames, duration, probe, speech_wav

from a2v_client.client import file_pcm


@pytest.fixture(scope="module")
def long_speech(media_dir):
    """About 6 s: long enough that "before the upload ends" is unambiguous."""
    return speech_wav(
        media_dir / "realtime.wav",
        "Streaming video should start while the speaker is still talking, not afterwards.",
        lead=0.5,
        tail=1.0,
    )


def _streamed_to(out, cmd: list[str]) -> tuple[float, float]:
    """Run the CLI writing to stdout, into ``out``: when its first byte came and when it was
    done (seconds from the start). Fails on a non-zero exit."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    first = proc.stdout.read(1)
    first_at = time.monotonic() - started
    rest = proc.stdout.read()
    stderr = proc.stderr.read().decode()
    finished_at = time.monotonic() - started
    assert proc.wait(30) == 0, stderr
    out.write_bytes(first + rest)
    return first_at, finished_at


def test_file_pcm_matches_the_file(long_speech):
    rate, channels, pieces = file_pcm(long_speech, chunk_seconds=0.02)
    sizes = [len(p) for p in pieces]
    assert (rate, channels) == (16000, 1)
    # 20 ms pieces (the last may be shorter), and every sample of the file
    assert set(sizes[:-1]) == {320 * 2}
    assert sum(sizes) / (2 * rate) == pytest.approx(duration(long_speech), abs=0.03)


def test_realtime_cli_streams_while_uploading(stack, long_speech, tmp_path):
    audio_seconds = duration(long_speech)
    flags = ("--realtime", "--resolution", "256x256", "-q", "-o", "-")
    cmd = a2v_command(stack.address, *generate_args(long_speech, *flags))
    out = tmp_path / "realtime.mp4"
    first_at, finished_at = _streamed_to(out, cmd)
    assert duration(out) == pytest.approx(audio_seconds, abs=0.1)
    # Paced upload: the whole run cannot be faster than the audio itself ...
    assert finished_at >= audio_seconds - 0.1
    # ... and the first media bytes arrive while the audio is still being sent (ordering, not a
    # performance figure: the margin is seconds wide; the latency itself is in `make bench`).
    assert first_at < audio_seconds - 1.5, (first_at, audio_seconds)


@pytest.mark.parametrize("flags", [(), ("--raw-frames",)], ids=["fmp4", "raw-frames"])
def test_live_lipsync_streams_while_the_camera_is_still_sending(
    stack, long_speech, tmp_path, flags
):
    """``--realtime --video``: the video goes like a live camera's (fragmented MP4, or raw
    frames), each frame at its time beside the audio of that moment; the output starts while
    both are still being sent, at the source's size and rate, its pixels outside the face
    the source's."""
    from test_lipsync import FPS, _psnr, _speaker_video

    audio_seconds = duration(long_speech)
    video, source = _speaker_video(audio_seconds + 0.5)
    src = tmp_path / "camera.mp4"
    src.write_bytes(video)
    args = ["generate", "--video", str(src), "--audio", str(long_speech), "--realtime", *flags]
    cmd = a2v_command(stack.address, *args, "--sync-mode", "cut_off", "-q", "-o", "-")
    out = tmp_path / "live.mp4"
    first_at, _ = _streamed_to(out, cmd)
    stream = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"], stream["r_frame_rate"]) == (512, 512, f"{FPS}/1")
    frames = decode_frames(out)
    assert abs(len(frames) - audio_seconds * FPS) <= 1  # the audio's length (the shorter)
    # ordering, not a performance figure (the latency is in `make bench`)
    assert first_at < audio_seconds - 1.5, (first_at, audio_seconds)
    # the top of the picture (background, hair) is the source's own, frame for frame
    top = [_psnr(frames[i][:120], source[i][:120]) for i in range(len(frames))]
    assert min(top) > 38, sorted(top)[:5]
