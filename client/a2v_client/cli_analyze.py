"""``a2v analyze``: what the models hear in an audio file, written as one JSON document.

The JSON is the AudioAnalysis message with names a canvas can use directly: times in seconds,
kinds and visemes by name (``speech``, ``OPEN``), spans as objects. One line on stderr sums it
up (duration, kind, tempo, how long it took).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from a2v.v1 import audio_to_video_pb2 as pb

from .cli_checks import UsageError, check_output, checked_audio
from .client import Client

_KINDS = {
    pb.AUDIO_KIND_SPEECH: "speech",
    pb.AUDIO_KIND_MUSIC: "music",
    pb.AUDIO_KIND_OTHER: "other",
}


def prepare_analyze(args: argparse.Namespace) -> Any:
    """The checks that need no server: the audio file, the output, the numbers."""
    if args.fps is not None and not (1 <= args.fps <= 60):
        raise UsageError(f"--fps {args.fps:g}: give 1 to 60 frames per second (default 25)")
    if args.trim_start < 0 or (args.trim_end is not None and args.trim_end <= args.trim_start):
        raise UsageError("--trim-start/--trim-end: the start must be >= 0 and before the end")
    audio = checked_audio(args)
    if args.output != "-":
        check_output(args.output, "-o", [args.audio])
        if Path(args.output).suffix.lower() != ".json":
            print(f"a2v: warning: -o {args.output}: the output is JSON", file=sys.stderr)
    return audio


def run_analyze(client: Client, args: argparse.Namespace, audio: Any) -> int:
    result = client.analyze(
        audio=audio,
        transcript=args.transcript,
        trim=(args.trim_start, args.trim_end or 0.0),
        fps=args.fps or 0.0,
    )
    text = json.dumps(analysis_json(result), indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(args.output).write_text(text)
    grid = result.beat_grid
    tempo = f", {grid.tempo_bpm:.1f} BPM" if grid.tempo_bpm else ""
    print(
        f"a2v: {result.duration_seconds:.2f} s of {_KINDS.get(result.kind, 'unknown')}{tempo}, "
        f"{len(result.phones)} phones, {len(grid.beats)} beats; analysed in "
        f"{result.analysis_seconds:.2f} s",
        file=sys.stderr,
    )
    return 0


def analysis_json(a: pb.AudioAnalysis) -> dict[str, Any]:
    """The AudioAnalysis as plain JSON (times in seconds, names instead of enum numbers)."""
    grid = a.beat_grid
    return {
        "request_id": a.request_id,
        "duration": a.duration_seconds,
        "kind": _KINDS.get(a.kind, "unknown"),
        "segments": [
            {"start": s.start_seconds, "end": s.end_seconds, "kind": _KINDS.get(s.kind, "unknown")}
            for s in a.segments
        ],
        "voiced": [[r.start_seconds, r.end_seconds] for r in a.voiced],
        "aligned": a.aligned,
        "phones": [
            {"phone": p.phone, "start": p.start_seconds, "end": p.end_seconds} for p in a.phones
        ],
        "visemes": [
            {
                "viseme": pb.Viseme.Name(v.viseme).removeprefix("VISEME_"),
                "start": v.start_seconds,
                "end": v.end_seconds,
            }
            for v in a.visemes
        ],
        "jaw": {"fps": a.jaw_fps, "open": [round(x, 4) for x in a.jaw_open]},
        "tempo_bpm": grid.tempo_bpm,
        "beats": list(grid.beats),
        "downbeats": list(grid.downbeats),
        "beats_per_bar": grid.beats_per_bar,
        "beat_confidence": round(grid.confidence, 4),
        "onsets": list(a.onsets),
        "analysis_seconds": a.analysis_seconds,
    }
