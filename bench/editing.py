"""Benchmark rows of the editing features: Analyze's speed (against decoding the same audio,
in the same run) and its tempo on a drum loop; re-rendering a range against the full render."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import av
import numpy as np

from a2v_client import Client, file_audio

from .inputs import audio_seconds
from .runs import file_run
from .table import Row


def _decode_seconds(path: Path) -> float:
    """The baseline: decoding the file to the models' 16 kHz mono here, in-process."""
    t = time.perf_counter()
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        for frame in c.decode(audio=0):
            resampler.resample(frame)
    return time.perf_counter() - t


def analysis(address: str, inputs: list[tuple[str, Path]], runs: int = 5) -> list[Row]:
    """Analyze wall time (client clock) per input, as x real time; the baseline is the audio's
    decode alone in this process."""
    rows = []
    with Client(address, timeout=300) as client:
        for _ in range(2):  # warm-up: each of the model's 2 instances sets up on its first call
            client.analyze(audio=file_audio(inputs[0][1]))
        for label, path in inputs:
            seconds = audio_seconds(path)
            walls, server = [], []
            result = None
            for _ in range(runs):
                t = time.perf_counter()
                result = client.analyze(audio=file_audio(path))
                walls.append(time.perf_counter() - t)
                server.append(result.analysis_seconds)
            decode = statistics.median(_decode_seconds(path) for _ in range(runs))
            wall = statistics.median(walls)
            assert result is not None
            tempo = result.beat_grid.tempo_bpm
            rows.append(
                Row(
                    f"Analyze, {label} ({seconds:.0f} s, {runs} runs, client clock)",
                    f"{wall:.2f} s = {seconds / wall:.0f}x real time (server "
                    f"{statistics.median(server):.2f} s); "
                    + (f"tempo {tempo:.1f} BPM" if tempo else "no steady beat"),
                    f"decoding it alone: {decode:.2f} s = {seconds / decode:.0f}x; "
                    f"Analyze / decode {wall / decode:.1f}",
                    ">= 50x real time (issue 14)",
                )
            )
    return rows


def ranges(address: str, audio: Path, image: bytes, video: Path, runs: int = 3) -> list[Row]:
    """The last 2 s of a clip re-rendered, against the whole clip (same run, paired)."""
    rows = []
    seconds = audio_seconds(audio)
    last = (max(0.0, np.floor(seconds) - 2.0), 0.0)
    for label, kwargs in (
        ("avatar 512x512", {"image": image, "size": "512x512"}),
        ("lipsync 720p", {"image": None, "size": None, "video": video}),
    ):
        file_run(address, audio, **kwargs)  # warm-up
        full, part = [], []
        for _ in range(runs):
            full.append(file_run(address, audio, **kwargs).total)
            part.append(file_run(address, audio, **kwargs, render_range=last).total)
        f, p = statistics.median(full), statistics.median(part)
        rows.append(
            Row(
                f"range re-render, {label}: the last 2 s of {seconds:.1f} s ({runs} runs)",
                f"{p:.2f} s",
                f"whole clip {f:.2f} s; range / whole {p / f:.2f}",
                "",
            )
        )
    return rows


def speakers(address: str, audio: Path, picture: bytes, video: Path, runs: int = 3) -> list[Row]:
    """Two speakers (face 0 for the first half of the audio, face 1 for the rest) against one
    (the default: the largest face speaks throughout), on the same two-face input, same run,
    paired: a model stream per speaking face is the cost."""
    rows = []
    half = round(audio_seconds(audio) / 2, 2)
    turns = [(0.0, half, 0), (half, 0.0, 1)]
    for label, kwargs in (
        ("avatar, group picture, 512x512", {"image": picture, "size": "512x512"}),
        ("avatar, group picture, 720p", {"image": picture, "size": "1280x720"}),
        ("lipsync, two-face video, 720p", {"image": None, "size": None, "video": video}),
    ):
        file_run(address, audio, **kwargs, speakers=turns)  # warm-up (both faces' setup)
        one, two = [], []
        for _ in range(runs):
            one.append(file_run(address, audio, **kwargs))
            two.append(file_run(address, audio, **kwargs, speakers=turns))
        o = statistics.median(r.total for r in one)
        t = statistics.median(r.total for r in two)
        first = statistics.median(r.first_chunk for r in two)
        duration = two[0].duration
        rows.append(
            Row(
                f"two speakers, {label} ({runs} runs)",
                f"{t:.2f} s = {duration / t:.2f}x real time; first chunk {1000 * first:.0f} ms",
                f"one speaker on the same input {o:.2f} s = {duration / o:.2f}x; "
                f"two / one {t / o:.2f}",
                "",
            )
        )
    return rows
