"""The README's examples (section "The CLI") run as written against the real stack: each Python
block as a script, and the shell examples that need no other machine, in a folder holding the
files they name (speech.wav, face.jpg, line.mp3, speaker.mp4)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BIN
from media import PORTRAIT, SPEECH, encode, probe, run

ROOT = Path(__file__).resolve().parents[2]
README_ADDRESS = "127.0.0.1:50051"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The CLI\n")
    return text[start : text.index("\n## ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    encode(SPEECH, d / "speech.wav")
    encode(SPEECH, d / "line.mp3", "-t", "3")
    shutil.copy(PORTRAIT, d / "face.jpg")
    run(
        *("ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(PORTRAIT), "-t", "2"),
        *("-r", "25", "-vf", "scale=320:320", "-pix_fmt", "yuv420p", str(d / "speaker.mp4")),
    )
    return d


def _streams(path: Path) -> list[str]:
    return sorted(s["codec_name"] for s in probe(path)["streams"])


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run(stack, workdir, index):
    code = _blocks("python")[index]
    assert README_ADDRESS in code
    (workdir / "clip.mp4").unlink(missing_ok=True)
    script = workdir / f"example_{index}.py"
    script.write_text(code.replace(README_ADDRESS, stack.address))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert _streams(workdir / "clip.mp4") == ["aac", "h264"]
    if "audio_kind_name" in code:
        assert re.search(r"^\d+ frames, speech$", done.stdout, re.M), done.stdout


def test_shell_examples_run(stack, workdir):
    lines = _blocks("sh")[0].splitlines()
    env = {**os.environ, "A2V_SERVER": stack.address, "PATH": f"{BIN}:{os.environ['PATH']}"}
    ran = 0
    for line in lines:
        command, _, pipe = line.partition(" | ")
        args = shlex.split(command)
        if "--server" in args:
            continue  # another machine
        (workdir / "clip.mp4").unlink(missing_ok=True)
        done = subprocess.run(
            [str(BIN / "a2v"), *args[1:]],
            cwd=workdir,
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert b"warning" not in done.stderr, (line, done.stderr)
        if pipe:  # -o - | a player: what it would read is a playable stream
            (workdir / "piped.mp4").write_bytes(done.stdout)
            assert _streams(workdir / "piped.mp4") == ["aac", "h264"]
        out = next((args[i + 1] for i, a in enumerate(args) if a == "-o"), None)
        if out and out != "-":
            assert _streams(workdir / out) == ["aac", "h264"], line
        ran += 1
    assert ran >= 5
