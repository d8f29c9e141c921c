"""Test audio made with espeak-ng / sox / numpy (16 kHz mono float32)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

SR = 16000


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} is missing: run `make system-deps`")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768


def speech(tmp: Path, text: str, lead: float = 0.5, tail: float = 1.0) -> np.ndarray:
    """espeak-ng speech resampled to 16 kHz with silence before and after."""
    _need("espeak-ng")
    _need("sox")
    raw, out = tmp / "raw.wav", tmp / "speech16.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(SR), str(out), "pad", str(lead), str(tail)],
        check=True,
        capture_output=True,
    )
    return read_wav(out)


def click_track(tmp: Path, bpm: float = 120.0, seconds: float = 10.0) -> np.ndarray:
    """sox click track: a 20 ms 1.5 kHz blip at every beat from t = 0."""
    _need("sox")
    period = 60.0 / bpm
    out = tmp / "clicks.wav"
    cmd = (
        f"sox -n -r {SR} -b 16 {out} synth 0.02 sine 1500 fade 0 0.02 0.015 "
        f"pad 0 {period - 0.02:.4f} repeat {round(seconds / period) - 1}"
    )
    subprocess.run(cmd, shell=True, check=True, capture_output=True)
    return read_wav(out)


def melody(seconds: float = 6.0) -> np.ndarray:
    """Sine-tone melody, 0.5 s notes, no voice."""
    notes = [440, 494, 523, 587, 659, 587, 523, 494]
    t = np.arange(SR // 2) / SR
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    parts = [0.3 * env * np.sin(2 * np.pi * notes[k % 8] * t) for k in range(int(seconds * 2))]
    return np.concatenate(parts).astype(np.float32)
