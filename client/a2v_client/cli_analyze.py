"""The commands that look at an input without rendering: ``a2v analyze`` (what the models hear
in an audio file, written as one JSON document) and ``a2v faces`` (the faces in a portrait or
a speaker video, one line each, with the index and box that --face-index and FaceSelector
take).

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

from google.protobuf.json_format import MessageToDict

from a2v.v1 import audio_to_video_pb2 as pb

from .cli_checks import UsageError, check_output, checked_audio
from .client import Client
from .files import InputFormatError, check_input_file

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


def prepare_faces(args: argparse.Namespace) -> None:
    path, kind = (args.image, "image") if args.image else (args.video, "video")
    try:
        check_input_file(path, kind, label=f"--{kind} {path}")
    except InputFormatError as error:
        raise UsageError(error.message) from None


def run_faces(client: Client, args: argparse.Namespace) -> int:
    found = client.list_faces(image=args.image, video=args.video)
    if args.json:
        print(json.dumps(MessageToDict(found, preserving_proto_field_name=True), indent=1))
        return 0
    what = f"{found.width}x{found.height}"
    if args.video:
        what += f", {found.duration_seconds:.1f} s, {found.frames_scanned} frames looked at"
    print(f"{len(found.faces)} face(s) in {args.image or args.video} ({what})", file=sys.stderr)
    for f in found.faces:
        b = f.box
        line = f"{f.index}\tbox {b.x0:.0f},{b.y0:.0f},{b.x1:.0f},{b.y1:.0f}\tscore {f.score:.2f}"
        if args.video:
            line += (
                f"\tseen {f.first_seconds:.1f}-{f.last_seconds:.1f} s"
                f"\tvisible {f.visible_seconds:.1f} s"
            )
        print(line)
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
