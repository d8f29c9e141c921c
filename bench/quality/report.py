"""Markdown tables of the quality benchmark: one row per clip, then the other measures."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..table import Row
from .metrics import GLITCH_IOD, MAX_LAG, SHARPNESS_AIM, Glitches, Openings, Sharpness, Sync

AIMS = {
    "sync": "offset 0 +- 1 frame, r >= 0.6",
    "mouth": "silence ~ the visual's rest opening; speech clearly above it",
    "psnr": ">= 38 dB",
}


@dataclass
class ClipRow:
    model: str
    audio: str
    visual: str
    frames: int = 0
    faces: int = 0  # frames where dlib found a face
    sync: Sync | None = None  # against the linear RMS envelope
    sync_db: Sync | None = None  # against the log (dB) envelope
    mouth: Openings | None = None
    rest: float = float("nan")
    psnr: np.ndarray | None = None  # per frame, lipsync only
    sharpness: Sharpness | None = None  # lipsync only
    glitches: Glitches | None = None
    mouths: tuple[int, int, int] | None = None  # lipsync: frames warped / retrieved / no face
    error: str = ""  # the service refused or failed the render: nothing measured


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def clip_table(rows: list[ClipRow]) -> str:
    header = (
        "model",
        "audio",
        "visual",
        "frames (face found)",
        f"sync offset, frames (lags +-{MAX_LAG}; > 0 = mouth late)",
        "r at that lag (RMS env.)",
        "r, log-RMS env. (offset)",
        "mouth opening: speech mean",
        "silence mean / p95",
        "visual's rest opening",
        "PSNR outside the face vs source, min / median",
        "lower-face sharpness vs source (Laplacian var., lips left out): median (p10)",
        f"folds/glitches: frames (largest returning jump, IOD; flagged > {GLITCH_IOD:g})",
        "mouth paths (lipsync): warp / retrieved / no face",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        "| aim | | | | 0 +- 1 | >= 0.6 | | > silence | ~ rest | | >= 38 dB | "
        f">= {SHARPNESS_AIM:g} | 0 (1 at most) | |"
    )
    for r in rows:
        if r.error:
            cells = (r.model, r.audio, r.visual, f"NOT RENDERED: {r.error}")
            cells += ("",) * (len(header) - len(cells))
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            continue
        psnr = "" if r.psnr is None else f"{r.psnr.min():.1f} / {np.median(r.psnr):.1f} dB"
        cells = (
            r.model,
            r.audio,
            r.visual,
            f"{r.frames} ({r.faces})",
            f"{r.sync.lag:+d}",
            _f(r.sync.corr),
            f"{_f(r.sync_db.corr)} ({r.sync_db.lag:+d})",
            _f(r.mouth.speech_mean, 3),
            f"{_f(r.mouth.silence_mean, 3)} / {_f(r.mouth.silence_p95, 3)}",
            _f(r.rest, 3),
            psnr,
            "" if r.sharpness is None else f"{_f(r.sharpness.ratio)} ({_f(r.sharpness.p10)})",
            ""
            if r.glitches is None
            else f"{r.glitches.count} ({_f(r.glitches.largest, 3)})"
            + (f" at {', '.join(map(str, r.glitches.frames[:5]))}" if r.glitches.count else ""),
            "" if r.mouths is None else " / ".join(map(str, r.mouths)),
        )
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def rows_table(rows: list[Row]) -> str:
    header = ("measure", "figure", "baseline / detail", "aim")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (r.measure, r.figure, r.baseline, r.target)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)
