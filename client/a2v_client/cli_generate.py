"""``a2v generate`` once its checks are done: the stream written to a file (as
``FILE.partial``, renamed on success), to stdout as it arrives, or to /dev/null or a named pipe
as it is; the ``--timeline`` file; the progress bar and the summary (for lipsync also how each
frame's mouth was made). Leaving early (an error, a closed stdout, Ctrl-C) cancels the call on
the server and leaves no short file behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, BinaryIO

from google.protobuf.json_format import MessageToDict

from a2v.v1 import audio_to_video_pb2 as pb

from .cli_checks import Job, UsageError, is_special
from .cli_messages import field_flag, print_accepted, usage_error
from .cli_parser import EXIT_SERVER
from .client import Client
from .live_video import LiveVideo
from .results import audio_kind_name


def run_generate(client: Client, args: argparse.Namespace, job: Job) -> int:
    # --realtime --video: the video goes like a live camera's, frame by frame in real time
    video = args.video
    if args.video and args.realtime:
        video = LiveVideo(args.video, raw=args.raw_frames)
    responses = client.generate(audio=job.audio, image=args.image, video=video, options=job.options)
    to_stdout = args.output == "-"
    # Write next to the target and rename at the end: a failed run never leaves a short
    # file under the requested name (stdout, /dev/null or a pipe are written as they are).
    direct = to_stdout or is_special(args.output)
    partial = None if direct else Path(args.output + ".partial")
    out: BinaryIO | None = sys.stdout.buffer if to_stdout else None
    timeline: IO[str] | None = None
    report: IO[str] | None = None
    flag, path = "-o", args.output
    try:
        if out is None:
            out = open(partial or args.output, "wb")  # noqa: SIM115 - closed below
        if args.timeline:
            flag, path = "--timeline", args.timeline
            timeline = open(args.timeline, "w")  # noqa: SIM115 - closed below
        if args.report:
            flag, path = "--report", args.report
            report = open(args.report, "w")  # noqa: SIM115 - closed below
    except OSError as error:
        responses.close()
        if out is not None and not to_stdout:
            out.close()
        if timeline is not None:
            timeline.close()
        if partial is not None:
            partial.unlink(missing_ok=True)
        return usage_error(UsageError(f"{flag} {path}: cannot write ({error.strerror or error})"))
    bar = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    summary = None
    try:
        # closing(): leaving early (an error, a closed stdout, Ctrl-C) cancels the call now
        with contextlib.closing(responses):
            for response in responses:
                kind = response.WhichOneof("message")
                if kind == "chunk":
                    out.write(response.chunk.data)
                    if to_stdout:
                        out.flush()  # a player reading the pipe starts now
                    if report is not None and response.chunk.HasField("report"):
                        report.write(json.dumps(report_row(response.chunk)) + "\n")
                elif kind == "timeline" and timeline is not None:
                    for f in response.timeline.frames:
                        timeline.write(json.dumps(_timeline_row(f)) + "\n")
                    if response.timeline.HasField("beat_grid"):
                        grid = MessageToDict(
                            response.timeline.beat_grid, preserving_proto_field_name=True
                        )
                        timeline.write(json.dumps({"beat_grid": grid}) + "\n")
                elif kind == "progress":
                    bar.update(response.progress)
                elif kind == "accepted":
                    print_accepted(response.accepted, args)
                elif kind == "summary":
                    summary = response.summary
    except BaseException:
        bar.close()
        if not to_stdout:
            out.close()
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    finally:
        if timeline is not None:
            timeline.close()
        if report is not None:
            report.close()
    bar.close()
    if not to_stdout:
        out.close()
    if summary is None:
        if partial is not None:
            partial.unlink(missing_ok=True)
        print("a2v: the server ended the stream without a summary", file=sys.stderr)
        return EXIT_SERVER
    if partial is not None:
        os.replace(partial, args.output)
    for entry in summary.warnings:  # (printed with -q too, as Accepted's are)
        field, _, why = entry.partition(": ")
        print(f"a2v: warning: {field_flag(field)}: {why}", file=sys.stderr)
    if not args.quiet:
        t = summary.timings
        where = "stdout" if to_stdout else args.output
        kind = audio_kind_name(summary)
        print(
            f"a2v: wrote {where}: {summary.frames} frames, {summary.duration_seconds:.2f} s"
            f"{'' if kind == 'unknown' else ', ' + kind}, {summary.bytes} bytes in "
            f"{t.total_seconds:.2f} s "
            f"(first chunk {t.first_chunk_seconds * 1000:.0f} ms)",
            file=sys.stderr,
        )
        if summary.HasField("mouth_sources"):
            print(f"a2v: mouth: {mouth_paths(summary.mouth_sources)}", file=sys.stderr)
    return 0


def mouth_paths(m: pb.MouthSources) -> str:
    """lipsync's Summary.mouth_sources for people: how many frames took each path."""
    return (
        f"{m.warped} warped, {m.retrieved} from the speaker's own video, "
        f"{m.passed_through} without a face"
    )


def report_row(chunk: pb.MediaChunk) -> dict:
    """One JSON line of ``--report``: a fragment's time span and its FragmentReport."""
    r = chunk.report
    return {
        "sequence": int(chunk.sequence_number),
        "start": round(chunk.start_seconds, 3),
        "end": round(chunk.end_seconds, 3),
        "frames": r.frames,
        "face_share": round(r.face_share, 3),
        "tracking_confidence": round(r.tracking_confidence, 3),
        "sync_agreement": round(r.sync_agreement, 3),
        "face_lost": r.face_lost,
        "cut": r.cut,
        "looped": r.looped,
    }


def _timeline_row(frame: pb.TimelineFrame) -> dict:
    """One JSON line of ``--timeline`` (uint64 as a number, the viseme by name)."""
    row = MessageToDict(
        frame, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    row["index"] = int(frame.index)
    return row


class _Progress:
    """A one-line progress bar on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._start = time.monotonic()
        self._shown = False

    def update(self, p: pb.Progress) -> None:
        if not self.enabled:
            return
        width = 30
        if p.frames_total:
            filled = int(width * p.frames_done / p.frames_total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"[{bar}] {p.frames_done}/{p.frames_total} frames"
        else:
            text = f"{p.frames_done} frames, {p.audio_seconds:.1f} s audio received"
        sys.stderr.write(f"\r{text} {time.monotonic() - self._start:5.1f} s ")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            self._shown = False
