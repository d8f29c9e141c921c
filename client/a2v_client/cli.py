"""The ``a2v`` command line: generate, models, health.

Everything that can be checked here is checked before a connection is made: option values
(``GenerateOptions.to_proto``), input files (``files.check_input_file``), the output path and
the TLS files. Each mistake ends the command with one line that names the option and what to
give instead. Exit statuses: 0 done, 1 the server refused or failed (its status name is
printed), 2 a usage mistake found here, 130 interrupted, 141 the reader of stdout went away.
"""

# The imports follow the setting of gRPC's log level (below):
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# gRPC's C core logs handshake failures and the like on stderr; the CLI explains them in one
# line instead. gRPC reads the level when it is first imported; the variable is removed again
# so that processes started later (devstack's server) keep their logs. A user's own setting
# wins.
_QUIET_GRPC = "GRPC_VERBOSITY" not in os.environ and "grpc" not in sys.modules
if _QUIET_GRPC:
    os.environ["GRPC_VERBOSITY"] = "NONE"
import grpc  # noqa: F401 - reads GRPC_VERBOSITY now

if _QUIET_GRPC:
    del os.environ["GRPC_VERBOSITY"]

import argparse
import contextlib
import functools
import json
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn

from google.protobuf.json_format import MessageToDict

from a2v.v1 import audio_to_video_pb2 as pb

from ._base import DEFAULT_ADDRESS
from .client import Client
from .connection import TlsFiles
from .errors import A2VClientError
from .files import AUDIO_FORMATS, IMAGE_FORMATS, VIDEO_FORMATS, InputFormatError, check_input_file
from .options import (
    ANIMATION,
    ASPECTS,
    FITS,
    MAX_FPS,
    MIN_FPS,
    SYNC_MODES,
    GenerateOptions,
    OptionError,
)
from .results import audio_kind_name
from .sources import CHUNK_BYTES, file_audio, realtime_file_audio

EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 130, 128 + signal.SIGPIPE
#: the width the README's synopsis is made with (tests/unit/test_cli_local.py checks it)
SYNOPSIS_WIDTH = 100

#: GenerateOptions attribute -> the option that sets it
OPTION_FLAGS = {
    "model": "--model",
    "fps": "--fps",
    "resolution": "--resolution",
    "aspect": "--aspect",
    "fit": "--fit",
    "prompt": "--prompt",
    "trim_start": "--trim-start",
    "trim_end": "--trim-end",
    "seed": "--seed",
    "transcript": "--transcript",
    "expression_scale": "--expression-scale",
    "head_motion_scale": "--head-motion",
    "blink_rate": "--blink-rate",
    "sync_mode": "--sync-mode",
    "face_index": "--face-index",
}
#: a field path in the server's answers (violations, ignored settings) -> the option
_FIELD_FLAGS = {
    "audio": "--audio",
    "image": "--image",
    "video": "--video",
    "config.model": "--model",
    "output.fps": "--fps",
    "output.resolution": "--resolution",
    "output.aspect_ratio": "--aspect",
    "output.fit": "--fit",
    "prompt": "--prompt",
    "trim.start_seconds": "--trim-start",
    "trim.end_seconds": "--trim-end",
    "trim": "--trim-start/--trim-end",
    "seed": "--seed",
    "transcript": "--transcript",
    "animation.expression_scale": "--expression-scale",
    "animation.head_motion_scale": "--head-motion",
    "animation.blink_rate": "--blink-rate",
    "sync_mode": "--sync-mode",
    "face": "--face-index",
    "include_timeline": "--timeline",
}


class UsageError(Exception):
    """A mistake in the command line, found before connecting (exit status 2)."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with the option texts as written (no defaults added: each text says its own)."""

    def __init__(self, prog: str, width: int | None = None) -> None:
        super().__init__(prog, max_help_position=30, width=width)


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes reported in one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f"'a2v {command} --help'" if command else "'a2v --help'"
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {hint})\n")


def _connection_options(parser: argparse.ArgumentParser, *, hidden: bool) -> None:
    """--server, --api-key and the TLS options. The main parser documents them and holds the
    defaults; each command accepts them too (hidden, no defaults), so that they work after the
    command as well."""

    def add(*flags: str, default: Any = None, help: str, **kwargs: Any) -> None:
        if hidden:
            parser.add_argument(*flags, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        else:
            parser.add_argument(*flags, default=default, help=help, **kwargs)

    add(
        "--server",
        default=None,
        metavar="HOST:PORT",
        help=f"the a2v server (default: $A2V_SERVER, else {DEFAULT_ADDRESS})",
    )
    add(
        "--api-key",
        default=None,
        metavar="KEY",
        help="API key, sent as 'authorization: Bearer KEY' (default: $A2V_API_KEY; prefer the "
        "variable: arguments are visible to other users in the process list)",
    )
    add(
        "--tls",
        action="store_true",
        default=False,
        help="connect with TLS, verifying the server against the system's CAs (implied by the "
        "--tls-* options)",
    )
    add(
        "--tls-ca",
        metavar="PEM",
        help="connect with TLS, verifying the server against this CA certificate "
        "(default: $A2V_TLS_CA)",
    )
    add(
        "--tls-cert",
        metavar="PEM",
        help="client certificate for mutual TLS, with --tls-key (default: $A2V_TLS_CERT)",
    )
    add("--tls-key", metavar="PEM", help="its private key (default: $A2V_TLS_KEY)")


def _add_generate(sub: Any, formatter: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="render a video from audio and a portrait (or a speaker video)",
        description=_paragraphs(
            "Render a video with the sound baked in: a talking head from a portrait (--image, "
            "model talking_avatar), or a speaker video re-animated to new audio (--video, "
            "model lipsync). The output is fragmented MP4 (H.264 + AAC), written as FILE.partial "
            "and renamed when complete, or streamed to stdout with -o -.",
            "Connection options (--server, --api-key, --tls...) may come before or after "
            "'generate' (see a2v --help). Unset options take the server's defaults, given "
            "below; settings a model does not use are reported as warnings.",
        ),
        epilog=_EXIT_STATUSES,
        formatter_class=formatter,
    )
    _connection_options(p, hidden=True)
    p.add_argument(
        "--audio",
        required=True,
        metavar="FILE",
        help=f"the sound: {AUDIO_FORMATS}, or - to read it from stdin. The video is as long as "
        "the (trimmed) audio",
    )
    visual = p.add_mutually_exclusive_group(required=True)
    visual.add_argument(
        "--image",
        metavar="FILE",
        help=f"a portrait ({IMAGE_FORMATS}) with one clearly visible face: talking avatar",
    )
    visual.add_argument(
        "--video",
        metavar="FILE",
        help=f"a video of a speaker ({VIDEO_FORMATS}): lipsync re-animates the mouth and "
        "keeps the video's frame rate",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the .mp4 to write, or - to stream the fragmented MP4 to stdout as it is made "
        "(a2v generate ... -o - | ffplay -)",
    )
    p.add_argument(
        "--model",
        default="",
        metavar="NAME",
        help="the model (a2v models lists them; default: talking_avatar with --image, lipsync "
        "with --video)",
    )
    p.add_argument(
        "--aspect",
        choices=ASPECTS,
        metavar="{" + ",".join(ASPECTS) + "}",
        help="the picture's shape (default: source, the shape of the portrait or video)",
    )
    p.add_argument(
        "--resolution",
        metavar="{480p,720p,1080p,WxH}",
        help="a preset naming the short side (default 720p), or an exact size such as 640x360 "
        "(even, 64..3840; its shape is the aspect)",
    )
    p.add_argument(
        "--fit",
        choices=FITS,
        help="crop (default): fill the frame and cut what does not fit, centred on the face; "
        "where a crop would cut into the face, the picture is zoomed out just enough to keep "
        "it whole and the uncovered edges get blurred bands, as with pad; a small face is "
        "zoomed in on. pad: show the whole picture, the empty bands filled with a blurred, "
        "darkened copy of it",
    )
    p.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help=f"frames per second, {MIN_FPS:g}..{MAX_FPS:g} (29.97 too; default 25). Lipsync "
        "keeps the video's own rate",
    )
    p.add_argument(
        "--prompt",
        default="",
        metavar="TEXT",
        help="camera, look and delivery words, e.g. 'slow zoom in, warm, calm' (a2v models "
        "lists the words each model understands; others are reported as having no effect)",
    )
    p.add_argument(
        "--transcript",
        default="",
        metavar="TEXT",
        help="what is said, in English (e.g. the text given to a TTS engine): the mouth "
        "follows its exact phones. Talking avatar only; leave it out for other languages",
    )
    scales = ANIMATION
    p.add_argument(
        "--expression-scale",
        type=float,
        metavar="X",
        help=f"mouth, brow and facial motion, 0 (still) .. {scales['expression_scale'][0]:g} "
        f"(default {scales['expression_scale'][1]:g}). Talking avatar only",
    )
    p.add_argument(
        "--head-motion",
        type=float,
        metavar="X",
        help=f"head motion (nods, sway, bob on the beat), 0 .. "
        f"{scales['head_motion_scale'][0]:g} (default {scales['head_motion_scale'][1]:g}). "
        "Talking avatar only",
    )
    p.add_argument(
        "--blink-rate",
        type=float,
        metavar="N",
        help=f"blinks per minute, 0 .. {scales['blink_rate'][0]:g} (default "
        f"{scales['blink_rate'][1]:g}). Talking avatar only",
    )
    p.add_argument(
        "--sync-mode",
        choices=SYNC_MODES,
        help="lipsync only, when the video and the audio differ in length (the output follows "
        "the audio): bounce (default: forward, then backward), loop, cut_off (stop at the "
        "shorter), silence (play the video once; pad the audio), remap (stretch the video)",
    )
    p.add_argument(
        "--face-index",
        type=int,
        metavar="N",
        help="lipsync only: which face to re-animate, 0 = the largest (default), 1 = the next",
    )
    p.add_argument(
        "--trim-start",
        type=float,
        default=0.0,
        metavar="S",
        help="skip the audio before this many seconds (default 0)",
    )
    p.add_argument(
        "--trim-end",
        type=float,
        default=0.0,
        metavar="S",
        help="stop the audio at this many seconds (default 0: at its end)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for reproducible output (blinks, grain, handheld camera; default 0: the "
        "server picks one and reports it)",
    )
    p.add_argument(
        "--timeline",
        metavar="FILE",
        help="also write the per-frame animation (mouth opening, viseme, head pose, blink) to "
        "this file, one JSON object per line",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="send the audio like a live source: decoded here to raw PCM and sent in 20 ms "
        "pieces at real-time pace (video arrives while the audio is still being sent)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary (warnings and errors are still printed)",
    )


_EXIT_STATUSES = """exit status:
  0    done
  1    the server refused or failed (its gRPC status name and message are printed), or
       it could not be reached
  2    a usage mistake found before connecting (an option value, an input file, the output)
  130  interrupted (Ctrl-C); the call is cancelled on the server
  141  stdout was closed by its reader (a2v generate -o - | head -c 1000): the call is
       cancelled on the server and a2v stops quietly, as a Unix tool killed by SIGPIPE"""


def build_parser(width: int | None = None) -> argparse.ArgumentParser:
    """The whole command line (``width``: fixed help width, for the README synopsis)."""
    formatter = functools.partial(_Formatter, width=width)
    parser = _Parser(
        prog="a2v",
        description=_paragraphs(
            "a2v audio-to-video client: sends audio and a portrait (or a speaker video) to an "
            "a2v server and writes the video it streams back. 'a2v COMMAND --help' tells more."
        ),
        epilog=_EXIT_STATUSES
        + "\n\n"
        + _paragraphs(
            "environment: A2V_SERVER, A2V_API_KEY, A2V_TLS_CA, A2V_TLS_CERT, A2V_TLS_KEY (the "
            "defaults of the options above); GRPC_VERBOSITY=ERROR shows gRPC's own log."
        ),
        formatter_class=formatter,
    )
    _connection_options(parser, hidden=False)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_generate(sub, formatter)
    models = sub.add_parser(
        "models",
        help="the server's models: readiness, inputs, prompt words and the options they use",
        formatter_class=formatter,
    )
    _connection_options(models, hidden=True)
    health = sub.add_parser(
        "health",
        help="print the server's health; exit 0 only when it is SERVING",
        formatter_class=formatter,
    )
    _connection_options(health, hidden=True)
    health.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help="one service, e.g. a2v.v1.AudioToVideo (default: the whole server)",
    )
    return parser


def synopsis() -> str:
    """The usage lines of ``a2v`` and each command (the README's CLI synopsis)."""
    parser = build_parser(SYNOPSIS_WIDTH)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = []
    for usage in [parser.format_usage(), *(c.format_usage() for c in sub.choices.values())]:
        first, *rest = usage.removeprefix("usage: ").rstrip("\n").split("\n")
        text += [first, *(line.removeprefix(" " * len("usage: ")) for line in rest)]
    return "\n".join(text) + "\n"


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(t, 88) for t in texts)


# --- running ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            tls = _tls(args)
            if args.command == "generate":
                job = _prepare_generate(args)
            client = Client(_checked_address(args), api_key=_api_key(args), tls=tls)
        except (UsageError, OptionError, InputFormatError, OSError, ValueError) as error:
            return _usage_error(error)
        with client:
            if args.command == "generate":
                return _generate(client, args, job)
            if args.command == "models":
                _print_models(client.list_models())
                sys.stdout.flush()
                return 0
            try:
                status = client.health(args.service)
            except A2VClientError as error:
                if error.code == "NOT_FOUND" and args.service:
                    error.message = error.message or (
                        f"the server has no service {args.service!r}: leave --service out for "
                        "the whole server, or name a2v.v1.AudioToVideo"
                    )
                raise
            print(status, flush=True)
            return 0 if status == "SERVING" else EXIT_SERVER
    except A2VClientError as error:
        _print_server_error(error, args)
        return EXIT_SERVER
    except BrokenPipeError:  # the reader of stdout (or stderr) went away
        _pipes_gone()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("a2v: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _address(args: argparse.Namespace) -> tuple[str, str]:
    """The server's address and where it came from."""
    if args.server:
        return args.server, "--server"
    if os.environ.get("A2V_SERVER"):
        return os.environ["A2V_SERVER"], "$A2V_SERVER"
    return DEFAULT_ADDRESS, "the default"


#: gRPC target schemes that name no TCP port
_PORTLESS = ("unix:", "unix-abstract:", "vsock:")


def _checked_address(args: argparse.Namespace) -> str:
    """The address, if it is one gRPC can dial as meant: HOST:PORT (a name without a port
    would go to port 443), no URL scheme."""
    address, source = _address(args)
    label = f"--server {address}" if source == "--server" else f"$A2V_SERVER={address}"
    scheme = address.split("://", 1)[0].lower() if "://" in address else ""
    if scheme in ("http", "https", "grpc", "grpcs"):
        raise UsageError(f"{label}: give HOST:PORT without {scheme}:// (--tls for TLS)")
    if address.startswith(_PORTLESS) or scheme:
        return address  # unix sockets, dns:///name:port and the like: gRPC's own syntax
    host, sep, port = address.rpartition(":")
    if not sep or not host or host.endswith(":") or not port.isdigit():
        raise UsageError(f"{label}: give HOST:PORT, e.g. {address.strip('[]') or 'host'}:50051")
    if not 0 < int(port) < 65536:
        raise UsageError(f"{label}: the port must be within 1..65535")
    return address


def _api_key(args: argparse.Namespace) -> str:
    return args.api_key or os.environ.get("A2V_API_KEY") or ""


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    files = {
        name: getattr(args, f"tls_{name}") or os.environ.get(f"A2V_TLS_{name.upper()}") or None
        for name in ("ca", "cert", "key")
    }
    if not (args.tls or any(files.values())):
        return None
    tls = TlsFiles(files["ca"], files["cert"], files["key"])
    labels = {
        name: (
            f"$A2V_TLS_{name.upper()}"
            if files[name] and not getattr(args, f"tls_{name}")
            else f"--tls-{name}"
        )
        for name in ("ca", "cert", "key")
    }
    tls.check(labels)
    return tls


def _usage_error(error: BaseException) -> int:
    if isinstance(error, OptionError):
        flag = OPTION_FLAGS.get(error.option, error.option)
        text = f"{flag} {_shown(error.value)}: {error.problem}"
    elif isinstance(error, A2VClientError):
        text = error.message
    else:
        text = str(error)
    print(f"a2v: {text}", file=sys.stderr)
    return EXIT_USAGE


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or " " in text) else text


class _Job:
    """A checked generate command: what to send and where to write."""

    def __init__(self, options: GenerateOptions, audio: Iterator[pb.AudioChunk]) -> None:
        self.options = options
        self.audio = audio


def _prepare_generate(args: argparse.Namespace) -> _Job:
    """Every check that needs no server, in the order of the command line's meaning: the
    options, the inputs, the outputs."""
    if args.fps is not None and args.fps == 0:
        raise OptionError(
            "fps", "0", f"give {MIN_FPS:g} to {MAX_FPS:g} frames per second (default 25)"
        )
    model = args.model or ("lipsync" if args.video else "")
    options = GenerateOptions(
        model=model,
        transcript=args.transcript,
        expression_scale=args.expression_scale,
        head_motion_scale=args.head_motion,
        blink_rate=args.blink_rate,
        include_timeline=bool(args.timeline),
        sync_mode=args.sync_mode,
        face_index=args.face_index,
        fps=args.fps or 0.0,
        resolution=args.resolution,
        aspect=args.aspect,
        fit=args.fit,
        prompt=args.prompt,
        trim_start=args.trim_start,
        trim_end=args.trim_end,
        seed=args.seed,
    )
    options.check()
    audio = _audio_source(args)
    visual = ("--image", args.image, "image") if args.image else ("--video", args.video, "video")
    try:
        check_input_file(visual[1], visual[2], label=f"{visual[0]} {visual[1]}")
    except InputFormatError as error:
        raise UsageError(error.message + _other_kind_hint(error)) from None
    inputs = [p for p in (args.audio, args.image, args.video) if p and p != "-"]
    if args.output == "-":
        if sys.stdout.isatty():
            raise UsageError(
                "-o -: stdout is a terminal; pipe it to a player (a2v generate ... -o - | "
                "ffplay -) or give a file name such as clip.mp4"
            )
    elif _special(args.output):
        pass  # /dev/null, a named pipe: written as it comes
    else:
        _check_output(args.output, "-o", inputs)
        suffix = Path(args.output).suffix.lower()
        if suffix not in (".mp4", ".m4v", ".mov"):
            print(
                f"a2v: warning: -o {args.output}: the output is MP4 (H.264 + AAC) whatever its "
                "name; name it .mp4 so that players recognise it",
                file=sys.stderr,
            )
    if args.timeline:
        if args.output != "-" and Path(args.timeline).resolve() == Path(args.output).resolve():
            raise UsageError(f"--timeline {args.timeline}: is also the video's output (-o)")
        if not _special(args.timeline):
            _check_output(args.timeline, "--timeline", inputs)
    return _Job(options, audio)


def _audio_source(args: argparse.Namespace) -> Iterator[pb.AudioChunk]:
    label = f"--audio {args.audio}"
    if args.audio == "-":
        if args.realtime:
            raise UsageError("--audio -: --realtime needs an audio file, not stdin")
        if sys.stdin.isatty():
            raise UsageError("--audio -: stdin is a terminal; pipe the audio file in")
        return (
            pb.AudioChunk(encoded=data)
            for data in iter(lambda: sys.stdin.buffer.read(CHUNK_BYTES), b"")
        )
    try:
        check_input_file(args.audio, "audio", label=label)
    except InputFormatError as error:
        raise UsageError(error.message + _other_kind_hint(error)) from None
    if args.realtime:
        try:
            return realtime_file_audio(args.audio)
        except ValueError as error:
            raise UsageError(
                f"{label}: cannot be decoded here for --realtime ({error}); send it without "
                "--realtime and the server decodes it"
            ) from None
    return file_audio(args.audio)


def _other_kind_hint(error: InputFormatError) -> str:
    flag = {"audio": "--audio", "image": "--image", "video": "--video"}.get(error.other_kind or "")
    return f" (give it with {flag})" if flag and flag not in error.message else ""


def _special(path: str) -> bool:
    """An existing output that is not a regular file (/dev/null, a named pipe)."""
    p = Path(path)
    return p.exists() and not p.is_file() and not p.is_dir()


def _check_output(path: str, flag: str, inputs: list[str]) -> None:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name such as {p / 'clip.mp4'}")
    folder = p.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: the folder {str(folder)!r} does not exist; create it")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {path}: cannot write in the folder {str(folder)!r}")
    for other in inputs:
        if other and Path(other).exists() and p.exists() and p.samefile(other):
            raise UsageError(f"{flag} {path}: is also an input; write to another file")


def _generate(client: Client, args: argparse.Namespace, job: _Job) -> int:
    responses = client.generate(
        audio=job.audio, image=args.image, video=args.video, options=job.options
    )
    to_stdout = args.output == "-"
    # Write next to the target and rename at the end: a failed run never leaves a short
    # file under the requested name (stdout, /dev/null or a pipe are written as they are).
    direct = to_stdout or _special(args.output)
    partial = None if direct else Path(args.output + ".partial")
    out: BinaryIO | None = sys.stdout.buffer if to_stdout else None
    timeline: IO[str] | None = None
    try:
        if out is None:
            out = open(partial or args.output, "wb")  # noqa: SIM115 - closed below
        if args.timeline:
            timeline = open(args.timeline, "w")  # noqa: SIM115 - closed below
    except OSError as error:
        responses.close()
        if out is not None and not to_stdout:
            out.close()
        if partial is not None:
            partial.unlink(missing_ok=True)
        flag, path = ("--timeline", args.timeline) if out is not None else ("-o", args.output)
        return _usage_error(UsageError(f"{flag} {path}: cannot write ({error.strerror or error})"))
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
                elif kind == "timeline" and timeline is not None:
                    for f in response.timeline.frames:
                        timeline.write(json.dumps(_timeline_row(f)) + "\n")
                elif kind == "progress":
                    bar.update(response.progress)
                elif kind == "accepted":
                    _print_accepted(response.accepted, args)
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
    if summary is not None and not args.quiet:
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
    return 0


def _print_accepted(a: pb.Accepted, args: argparse.Namespace) -> None:
    if not args.quiet:
        print(
            f"a2v: {a.model} {a.width}x{a.height} @ {a.fps:g} fps, seed {a.seed} "
            f"(request {a.request_id})",
            file=sys.stderr,
        )
    if a.unused_prompt_words:
        print(
            f"a2v: warning: --prompt words with no effect on {a.model}: "
            + " ".join(a.unused_prompt_words)
            + " (a2v models lists the words it understands)",
            file=sys.stderr,
        )
    for entry in a.ignored_settings:
        field, _, why = entry.partition(": ")
        print(f"a2v: warning: {_flag(field)} is ignored: {why}", file=sys.stderr)
    for entry in a.warnings:
        field, _, why = entry.partition(": ")
        print(f"a2v: warning: {_flag(field)}: {why}", file=sys.stderr)


def _flag(field: str) -> str:
    """The option for a field path of the server's ("config.output.fps", "sync_mode", ...)."""
    path = field.removeprefix("config.")
    for prefix in (path, path.rsplit(".", 1)[0]):
        if prefix in _FIELD_FLAGS:
            return _FIELD_FLAGS[prefix]
        if f"config.{prefix}" in _FIELD_FLAGS:
            return _FIELD_FLAGS[f"config.{prefix}"]
    return field


def _print_server_error(error: A2VClientError, args: argparse.Namespace) -> None:
    """One line: the status name, the message and the option it is about; a field violation
    gets a line of its own only when its words are not in the message already."""
    message = error.message or "(the server sent no message)"
    if error.reason:
        message += _connection_hint(error.reason, args)
    if error.retry_delay is not None:
        message += f" (the server says: try again in {error.retry_delay:g} s)"
    options, more = [], []
    for field, description in error.violations:
        flag = _flag(field)
        if description in message:  # the same words: name the option only
            if flag != field:
                options.append(flag + _argument(args, flag))
        else:
            more.append(f"  {flag if flag != field else 'field ' + field}: {description}")
    suffix = f" ({', '.join(dict.fromkeys(options))})" if options else ""
    print(f"a2v: {error.code}: {message}{suffix}", file=sys.stderr)
    for line in more:
        print(line, file=sys.stderr)


def _argument(args: argparse.Namespace, flag: str) -> str:
    """`` FILE`` for the file options (the name helps), else nothing."""
    if flag in ("--audio", "--image", "--video"):
        value = getattr(args, flag[2:], None)
        return f" {value}" if value else ""
    return ""


def _connection_hint(reason: str, args: argparse.Namespace) -> str:
    source = _address(args)[1]
    where = (
        " (the default address; set --server or $A2V_SERVER)"
        if source == "the default"
        else f" (address from {source})"
    )
    return {
        "refused": where,
        "dns": where,
        "timeout": where,
        "tls_name": where,
        "not_tls": " (leave out --tls and --tls-ca, or use the server's TLS port)",
        "tls_untrusted": " (give the CA with --tls-ca or $A2V_TLS_CA)",
        "tls_files": " (--tls-ca, --tls-cert, --tls-key)",
        "closed": " (--tls-ca for TLS; --tls-cert and --tls-key for mutual TLS)",
    }.get(reason, "")


def _pipes_gone() -> None:
    """A reader went away: point stdout and stderr at /dev/null, so that nothing more is
    written to a closed pipe (the interpreter's final flush would complain)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
            os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _print_models(models: list[pb.ModelInfo]) -> None:
    for m in models:
        inputs = ",".join(
            pb.InputKind.Name(k).removeprefix("INPUT_KIND_").lower() for k in m.accepted_inputs
        )
        print(
            f"{m.name}\t{'ready' if m.ready else 'NOT READY'}\tinputs={inputs}\t"
            f"fps={m.native_fps or 'source':}\t"
            f"lookahead={m.lookahead_seconds * 1000:.0f}ms\t"
            f"prompt={'yes' if m.accepts_prompt else 'no'}\t{m.description}"
        )
        kinds: dict[str, list[str]] = {}
        for effect in m.prompt_effects:
            kinds.setdefault(effect.kind, []).append(
                f"{effect.effect} ({', '.join(effect.phrases)})"
            )
        for kind, effects in kinds.items():
            print(f"  prompt {kind}: " + "; ".join(effects))
        flags = dict.fromkeys(_flag(s) for s in m.settings if _flag(s) != s)
        if flags:
            print("  options: " + " ".join(flags))


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
