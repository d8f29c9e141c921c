"""The ``a2v`` command line: generate, models, health."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from google.protobuf.json_format import MessageToDict

from a2v.v1 import audio_to_video_pb2 as pb

from ._base import DEFAULT_ADDRESS
from .client import Client
from .connection import TlsFiles
from .errors import A2VClientError
from .options import GenerateOptions
from .sources import file_audio, realtime_file_audio


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="render a video from audio and a portrait (or a speaker video)"
    )
    p.add_argument("--audio", required=True, help="audio file (WAV, MP3, M4A, Ogg, FLAC, WebM)")
    visual = p.add_mutually_exclusive_group(required=True)
    visual.add_argument("--image", help="portrait (PNG, JPEG, WebP): talking avatar")
    visual.add_argument(
        "--video", help="video of a speaker (MP4, MOV, WebM): lipsync (model lipsync)"
    )
    p.add_argument(
        "--sync-mode",
        choices=["bounce", "loop", "cut_off", "silence", "remap"],
        help="lipsync, when video and audio lengths differ: bounce (default; forward then "
        "backward), loop, cut_off (shorter wins), silence (pad the audio), remap (stretch)",
    )
    p.add_argument("--face-index", type=int, help="lipsync: which face, 0 = largest")
    p.add_argument("--transcript", default="", help="what is said (English), for exact phones")
    p.add_argument("--expression-scale", type=float, help="facial motion 0..2 (default 1)")
    p.add_argument("--head-motion", type=float, help="head motion 0..2 (default 1)")
    p.add_argument("--blink-rate", type=float, help="blinks per minute 0..60 (default 15)")
    p.add_argument(
        "--timeline", help="write the per-frame animation timeline (JSON lines) to this file"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .mp4 path, or - to stream the fragmented MP4 to stdout",
    )
    p.add_argument(
        "--aspect",
        choices=["1:1", "16:9", "9:16", "4:3", "3:4", "source"],
        help="picture shape (default: the portrait's)",
    )
    p.add_argument("--resolution", help="480p, 720p (default), 1080p or WIDTHxHEIGHT")
    p.add_argument("--fit", choices=["crop", "pad"], help="crop (default) or pad to the shape")
    p.add_argument("--fps", type=float, default=0.0, help="frames per second (default 25)")
    p.add_argument("--prompt", default="", help="text that steers delivery and style")
    p.add_argument("--trim-start", type=float, default=0.0, help="skip audio before (seconds)")
    p.add_argument("--trim-end", type=float, default=0.0, help="stop the audio at (seconds)")
    p.add_argument("--seed", type=int, default=0, help="seed for reproducible output")
    p.add_argument("--model", default="", help="model name (see a2v models)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="send the audio like a live source: decoded here to raw PCM, 20 ms pieces "
        "paced in real time (video arrives while the audio is still being sent)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="a2v", description="a2v audio-to-video client")
    parser.add_argument(
        "--server",
        default=os.environ.get("A2V_SERVER", DEFAULT_ADDRESS),
        help=f"server host:port (default {DEFAULT_ADDRESS}, or $A2V_SERVER)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("A2V_API_KEY"),
        help="API key sent as 'authorization: Bearer' (default $A2V_API_KEY; prefer the "
        "variable: arguments are visible to other users in the process list)",
    )
    parser.add_argument(
        "--tls-ca",
        default=os.environ.get("A2V_TLS_CA"),
        help="connect with TLS, verifying the server against this PEM CA ($A2V_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert", default=os.environ.get("A2V_TLS_CERT"), help="client certificate (mTLS)"
    )
    parser.add_argument(
        "--tls-key", default=os.environ.get("A2V_TLS_KEY"), help="client certificate's key"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS verified against the system's CAs (implied by --tls-*)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    sub.add_parser("models", help="list the server's models")
    health = sub.add_parser("health", help="exit 0 only when the server is SERVING")
    health.add_argument("--service", default="", help="service name (default: whole server)")
    args = parser.parse_args(argv)
    try:
        tls = None
        if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
            tls = TlsFiles(args.tls_ca, args.tls_cert, args.tls_key)
        with Client(args.server, api_key=args.api_key or "", tls=tls) as client:
            if args.command == "generate":
                return _generate(client, args)
            if args.command == "models":
                for m in client.list_models():
                    inputs = ",".join(
                        pb.InputKind.Name(k).removeprefix("INPUT_KIND_").lower()
                        for k in m.accepted_inputs
                    )
                    print(
                        f"{m.name}\t{'ready' if m.ready else 'NOT READY'}\tinputs={inputs}\t"
                        f"fps={m.native_fps or 'source':}\t"
                        f"lookahead={m.lookahead_seconds * 1000:.0f}ms\t"
                        f"prompt={'yes' if m.accepts_prompt else 'no'}\t{m.description}"
                    )
                return 0
            status = client.health(args.service)
            print(status)
            return 0 if status == "SERVING" else 1
    except A2VClientError as error:
        print(f"a2v: {error.code}: {error.message}", file=sys.stderr)
        for field, description in error.violations:
            print(f"  field {field}: {description}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"a2v: {error}", file=sys.stderr)
        return 2


def _generate(client: Client, args: argparse.Namespace) -> int:
    options = GenerateOptions(
        model=args.model or ("lipsync" if args.video else ""),
        transcript=args.transcript,
        expression_scale=args.expression_scale,
        head_motion_scale=args.head_motion,
        blink_rate=args.blink_rate,
        include_timeline=bool(args.timeline),
        sync_mode=args.sync_mode,
        face_index=args.face_index,
        fps=args.fps,
        resolution=args.resolution,
        aspect=args.aspect,
        fit=args.fit,
        prompt=args.prompt,
        trim_start=args.trim_start,
        trim_end=args.trim_end,
        seed=args.seed,
    )
    image = Path(args.image).read_bytes() if args.image else None
    timeline = open(args.timeline, "w") if args.timeline else None  # noqa: SIM115
    audio = realtime_file_audio(args.audio) if args.realtime else file_audio(args.audio)
    to_stdout = args.output == "-"
    # Write next to the target and rename at the end: a failed run never leaves a short
    # file under the requested name.
    partial = None if to_stdout else Path(args.output + ".partial")
    out: BinaryIO = sys.stdout.buffer if partial is None else open(partial, "wb")  # noqa: SIM115
    bar = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    summary = None
    try:
        for response in client.generate(
            audio=audio, image=image, video=args.video, options=options
        ):
            kind = response.WhichOneof("message")
            if kind == "timeline" and timeline is not None:
                for f in response.timeline.frames:
                    timeline.write(json.dumps(_timeline_row(f)) + "\n")
            elif kind == "chunk":
                out.write(response.chunk.data)
                if to_stdout:
                    out.flush()  # a player reading the pipe starts now
            elif kind == "progress":
                bar.update(response.progress)
            elif kind == "accepted":
                a = response.accepted
                if not args.quiet:
                    print(
                        f"a2v: {a.model} {a.width}x{a.height} @ {a.fps:g} fps "
                        f"(request {a.request_id})",
                        file=sys.stderr,
                    )
                    if a.unused_prompt_words:
                        print(
                            "a2v: prompt words with no effect on this model: "
                            + " ".join(a.unused_prompt_words),
                            file=sys.stderr,
                        )
            elif kind == "summary":
                summary = response.summary
    except BaseException:
        bar.close()
        if partial is not None:
            out.close()
            partial.unlink(missing_ok=True)
        raise
    finally:
        if timeline is not None:
            timeline.close()
    bar.close()
    if partial is not None:
        out.close()
        if summary is None:
            partial.unlink(missing_ok=True)
            print("a2v: the server ended the stream without a summary", file=sys.stderr)
            return 1
        os.replace(partial, args.output)
    if summary is not None and not args.quiet:
        t = summary.timings
        where = "stdout" if to_stdout else args.output
        print(
            f"a2v: wrote {where}: {summary.frames} frames, {summary.duration_seconds:.2f} s, "
            f"{summary.bytes} bytes in {t.total_seconds:.2f} s "
            f"(first chunk {t.first_chunk_seconds * 1000:.0f} ms)",
            file=sys.stderr,
        )
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
