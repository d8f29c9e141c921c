"""Plain-text and Markdown rendering of the benchmark's result rows."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

HEADER = ("measure", "figure", "baseline (same run) / ratio", "target")


@dataclass
class Row:
    measure: str
    figure: str
    baseline: str = ""
    target: str = ""


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def markdown(rows: list[Row], header: tuple[str, str, str, str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (r.measure, r.figure, r.baseline, r.target)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)
