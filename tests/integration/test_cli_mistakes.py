"""The CLI as a new user meets it, against the real stack: the server's errors in one line with
the option they are about, settings the model does not use reported as warnings (by the
server, so the library sees them too), the prompt vocabulary from the server, and a reader that
closes stdout early stopping the CLI quietly and the generation on the server at once."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import a2v_command, generate_args
from media import PORTRAIT, SPEECH, no_face_png, run

from a2v_client import Client, GenerateOptions, file_audio

SMALL = ("--resolution", "256x256")


def _a2v(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        a2v_command(stack.address, *args), capture_output=True, text=True, timeout=300
    )


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def speaker_video(tmp_path_factory) -> Path:
    """1.5 s of the portrait as a still 24 fps video."""
    out = tmp_path_factory.mktemp("video") / "speaker.mp4"
    run(
        *("ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(PORTRAIT)),
        *("-t", "1.5", "-r", "24", "-vf", "scale=256:256", "-pix_fmt", "yuv420p", str(out)),
    )
    return out


def test_server_errors_are_printed_once_with_their_option(stack, tmp_path, short_speech):
    out = ["-q", "-o", str(tmp_path / "x.mp4")]  # -q: no "accepted" line before the error
    noise = tmp_path / "noise.wav"  # named like audio: the server's decoder judges it
    noise.write_bytes(os.urandom(5000))
    landscape = no_face_png(tmp_path / "landscape.png")
    for args, code, words in [
        (generate_args(noise, *out), "INVALID_ARGUMENT", f"(--audio {noise})"),
        (generate_args(short_speech, *out, image=landscape), "INVALID_ARGUMENT", "no face"),
        (generate_args(short_speech, *out, "--model", "nope"), "NOT_FOUND", "model 'nope'"),
        (generate_args(short_speech, *out, "--model", "lipsync"), "INVALID_ARGUMENT", "video"),
    ]:
        done = _a2v(stack, *args)
        assert done.returncode == 1, (args, done.stderr)
        line = _one_line(done.stderr)  # no second "field ...: the same words" line
        assert line.startswith(f"a2v: {code}: ") and words in line, line
    assert not list(tmp_path.glob("x.mp4*"))


def test_settings_a_portrait_does_not_use_are_warned(stack, tmp_path, short_speech):
    out = tmp_path / "avatar.mp4"
    done = _a2v(
        stack,
        *generate_args(short_speech, *SMALL, "-q", "-o", str(out)),
        *("--sync-mode", "loop", "--face-index", "1", "--prompt", "warm purple dragon"),
        *("--transcript", "Bonjour, je m'appelle Marie et j'habite à Paris depuis dix ans."),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(
        line.startswith("a2v: warning: --sync-mode is ignored: only lipsync") for line in lines
    )
    assert any(
        line.startswith("a2v: warning: --face-index is ignored: only lipsync") for line in lines
    )
    assert any(
        line.startswith("a2v: warning: --transcript: it does not look like English")
        for line in lines
    )
    assert any("purple dragon" in line and "--prompt words" in line for line in lines)
    assert out.stat().st_size > 0


def test_settings_lipsync_does_not_use_are_warned(stack, tmp_path, short_speech, speaker_video):
    out = tmp_path / "lipsync.mp4"
    done = _a2v(
        stack,
        *("generate", "--audio", str(short_speech), "--video", str(speaker_video)),
        *("-q", "-o", str(out), "--fps", "30", "--blink-rate", "5", "--prompt", "calm, warm"),
        *("--transcript", "Hello there, friend."),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(
        line.startswith("a2v: warning: --fps is ignored: lipsync keeps the speaker video's frame")
        for line in lines
    ), lines
    assert any(line.startswith("a2v: warning: --transcript is ignored") for line in lines)
    assert any(line.startswith("a2v: warning: --blink-rate is ignored") for line in lines)
    # delivery words move the avatar's face only: on lipsync they are unused prompt words
    assert any("--prompt words with no effect on lipsync: calm" in line for line in lines)


def test_the_library_gets_the_same_report(client, short_speech):
    responses = client.generate(
        audio=file_audio(short_speech),
        image=PORTRAIT,
        options=GenerateOptions(sync_mode="loop", resolution="256x256"),
    )
    accepted = next(responses).accepted
    responses.close()
    assert [s.split(":")[0] for s in accepted.ignored_settings] == ["sync_mode"]
    assert list(accepted.warnings) == []


def test_models_shows_the_vocabulary_and_options_from_the_server(stack, client):
    done = _a2v(stack, "models")
    assert done.returncode == 0, done.stderr
    avatar, lipsync = done.stdout.split("\nlipsync\t")
    assert "  prompt camera: static (static, locked off, still camera)" in avatar
    assert "  prompt delivery: calm (calm, subtle, gentle, serious)" in avatar
    assert "  options: --fps" in avatar and "--sync-mode" not in avatar
    assert "prompt delivery" not in lipsync and "--sync-mode --face-index" in lipsync
    model = client.get_model("talking_avatar")
    assert {e.kind for e in model.prompt_effects} == {"camera", "look", "delivery"}


def _active_streams(stack) -> float:
    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("a2v_active_streams{")
    )


def test_closed_stdout_cancels_the_generation_on_the_server(stack, tmp_path):
    # a live source of 9.5 s: without a cancel the server would render for that long, and a
    # resumable call would wait resume_detach_seconds (15 s) for its reader on top
    process = subprocess.Popen(
        a2v_command(stack.address, *generate_args(SPEECH, *SMALL, "--realtime", "-q", "-o", "-")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    head = process.stdout.read(3000)
    assert head[4:8] == b"ftyp"  # the stream had begun
    assert _active_streams(stack) == 1
    process.stdout.close()  # `| head -c 3000`: the reader is done
    assert process.wait(30) == 141
    assert process.stderr.read() == b""  # quietly
    deadline = time.monotonic() + 5
    while _active_streams(stack) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _active_streams(stack) == 0, "the server still renders for a reader that left"
    with Client(stack.address) as c:
        assert c.health() == "SERVING"


def test_health_of_an_unknown_service_says_so(stack):
    done = _a2v(stack, "health", "--service", "nope")
    assert done.returncode == 1
    assert "NOT_FOUND: the server has no service 'nope'" in _one_line(done.stderr)
