"""The audio_analysis model's answer (one JSON object, its ANALYSIS tensor) as a domain
``Analysis``. The model documents the fields (model_repository/audio_analysis/config.pbtxt);
anything malformed is the model's fault (INTERNAL), never passed on half-read."""

from __future__ import annotations

import json
import math
from typing import Any

from a2v_server.domain import Analysis, BeatGrid, Span
from a2v_server.errors import ModelFault

#: the model's kind names -> a2v.v1.AudioKind numbers
KINDS = {"speech": 1, "music": 2, "other": 3}
#: a2v.v1.Viseme numbers the models use (visemes.py: REST .. L)
VISEMES = range(1, 9)


def parse_analysis(text: str | bytes) -> Analysis:
    try:
        reply = json.loads(text)
        return _analysis(reply)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFault(f"audio analysis: the model's answer is malformed ({exc})") from None


def _analysis(r: dict[str, Any]) -> Analysis:
    jaw = r.get("jaw", {"rate": 0.0, "values": []})
    return Analysis(
        duration_seconds=_time(r["duration"]),
        kind=KINDS[r["kind"]] if "kind" in r else 0,
        segments=tuple(
            Span(KINDS[s["kind"]], _time(s["start"]), _time(s["end"]))
            for s in r.get("segments", ())
        ),
        voiced=tuple((_time(a), _time(b)) for a, b in r.get("voiced", ())),
        phones=tuple(
            Span(str(p["phone"]), _time(p["start"]), _time(p["end"])) for p in r.get("phones", ())
        ),
        visemes=tuple(
            Span(_viseme(v["viseme"]), _time(v["start"]), _time(v["end"]))
            for v in r.get("visemes", ())
        ),
        aligned=bool(r.get("aligned", False)),
        jaw_fps=float(jaw["rate"]),
        jaw_open=tuple(_unit(v) for v in jaw["values"]),
        beat_grid=beat_grid(r),
        onsets=tuple(_time(t) for t in r.get("onsets", ())),
    )


def beat_grid(r: dict[str, Any]) -> BeatGrid:
    tempo = float(r.get("tempo", 0.0))
    if not (math.isfinite(tempo) and tempo >= 0):
        raise ValueError(f"tempo {tempo}")
    return BeatGrid(
        tempo_bpm=tempo,
        beats=tuple(_time(t) for t in r.get("beats", ())),
        downbeats=tuple(_time(t) for t in r.get("downbeats", ())),
        beats_per_bar=int(r.get("beats_per_bar", 4)),
        confidence=_unit(r.get("beat_confidence", 0.0)),
    )


def _time(value: Any) -> float:
    t = float(value)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"time {value!r}")
    return t


def _unit(value: Any) -> float:
    v = float(value)
    if not (math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6):
        raise ValueError(f"value {value!r} outside 0..1")
    return min(max(v, 0.0), 1.0)


def _viseme(value: Any) -> int:
    v = int(value)
    if v not in VISEMES:
        raise ValueError(f"viseme {value!r}")
    return v
