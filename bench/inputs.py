"""Benchmark inputs made on the spot (espeak-ng speech, sox) and a description of the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "samples" / "portrait.jpg"
SPEECH = ROOT / "samples" / "speech.ogg"

_TEXT = (
    "Good evening. Here is the news at a glance. The weather stays mild through the weekend, "
    "with light rain in the north on Sunday. Markets closed slightly higher after a quiet day, "
    "and the city council approved the new bus lanes on the river road."
)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def speech(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Mono speech of exactly ``seconds`` (espeak-ng, repeated with sox, then cut)."""
    raw = path.with_suffix(".raw.wav")
    _run("espeak-ng", "-v", "en-us", "-w", str(raw), _TEXT)
    once = audio_seconds(raw)
    repeats = max(0, int(seconds / once))  # sox "repeat N" plays N+1 times
    _run(
        "sox",
        str(raw),
        "-r",
        str(rate),
        "-c",
        "1",
        str(path),
        "repeat",
        str(repeats),
        "trim",
        "0",
        f"{seconds:.3f}",
    )
    raw.unlink()
    return path


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6


def machine() -> str:
    """CPU model, core count, memory and OS, for the table's caption."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = "no GPU" if not Path("/dev/nvidia0").exists() else "GPU present (model runs on CPU)"
    return (
        f"{model}, {os.cpu_count()} cores{mem}, {gpu}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )
