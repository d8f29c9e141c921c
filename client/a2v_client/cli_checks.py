"""What ``a2v`` checks before a connection is made: the server's address, the API key and the
TLS files, and for generate the option values (``GenerateOptions.check``), the input files
(``files.check_input_file``) and the outputs. Each mistake is a ``UsageError`` (or the
``OptionError`` / ``InputFormatError`` of the library), printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from a2v.v1 import audio_to_video_pb2 as pb

from ._base import DEFAULT_ADDRESS
from .connection import TlsFiles
from .files import InputFormatError, check_input_file
from .options import MAX_FPS, MIN_FPS, GenerateOptions, OptionError
from .sources import CHUNK_BYTES, file_audio, realtime_file_audio


class UsageError(Exception):
    """A mistake in the command line, found before connecting (exit status 2)."""


def server_address(args: argparse.Namespace) -> tuple[str, str]:
    """The server's address and where it came from."""
    if args.server:
        return args.server, "--server"
    if os.environ.get("A2V_SERVER"):
        return os.environ["A2V_SERVER"], "$A2V_SERVER"
    return DEFAULT_ADDRESS, "the default"


#: gRPC target schemes that name no TCP port, or several addresses (ipv4:H:P,H:P: a cluster's
#: replicas, balanced per call)
_PORTLESS = ("unix:", "unix-abstract:", "vsock:", "ipv4:", "ipv6:")


def checked_address(args: argparse.Namespace) -> str:
    """The address, if it is one gRPC can dial as meant: HOST:PORT (a name without a port
    would go to port 443), no URL scheme."""
    address, source = server_address(args)
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


def api_key(args: argparse.Namespace) -> str:
    return args.api_key or os.environ.get("A2V_API_KEY") or ""


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
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


class Job:
    """A checked generate command: what to send and where to write."""

    def __init__(self, options: GenerateOptions, audio: Iterator[pb.AudioChunk]) -> None:
        self.options = options
        self.audio = audio


def prepare_generate(args: argparse.Namespace) -> Job:
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
        range=_range(args.range),
        **_speakers(args.speakers),
    )
    options.check()
    if getattr(args, "raw_frames", False) and not (args.realtime and args.video):
        raise UsageError("--raw-frames: sends a live video's frames: add --realtime --video")
    audio = checked_audio(args)
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
    elif is_special(args.output):
        pass  # /dev/null, a named pipe: written as it comes
    else:
        check_output(args.output, "-o", inputs)
        suffix = Path(args.output).suffix.lower()
        if suffix not in (".mp4", ".m4v", ".mov"):
            print(
                f"a2v: warning: -o {args.output}: the output is MP4 (H.264 + AAC) whatever its "
                "name; name it .mp4 so that players recognise it",
                file=sys.stderr,
            )
    for flag, path in (("--timeline", args.timeline), ("--report", args.report)):
        if not path:
            continue
        if args.output != "-" and Path(path).resolve() == Path(args.output).resolve():
            raise UsageError(f"{flag} {path}: is also the video's output (-o)")
        if not is_special(path):
            check_output(path, flag, inputs)
    if (
        args.timeline
        and args.report
        and Path(args.timeline).resolve() == Path(args.report).resolve()
    ):
        raise UsageError(f"--report {args.report}: is also the --timeline file")
    return Job(options, audio)


def _speakers(text: str | None) -> dict:
    """--speakers: START:END=FACE,... turns, or chN=FACE,... channels."""
    if not text:
        return {}
    turns, channels = [], {}
    for item in text.split(","):
        who, sep, face = item.strip().partition("=")
        try:
            if not sep:
                raise ValueError
            index = int(face)
            if who.lower().startswith("ch"):
                channels[int(who[2:])] = index
            else:
                start, colon, end = who.partition(":")
                if not colon:
                    raise ValueError
                turns.append((float(start), float(end) if end.strip() else 0.0, index))
        except ValueError:
            raise UsageError(
                f"--speakers {text}: give START:END=FACE turns (e.g. 0:4.2=0,4.2:=1) or "
                "chN=FACE channels (e.g. ch0=1,ch1=0); FACE is an index from 'a2v faces'"
            ) from None
    if turns and channels:
        raise UsageError(f"--speakers {text}: give turns or channels, not both")
    for first, last, _ in turns:
        if first < 0 or (last and last <= first):
            raise UsageError(f"--speakers {text}: each turn's END must be after its START")
    return {"speakers": turns} if turns else {"channel_speakers": channels}


def _range(text: str | None) -> tuple[float, float] | None:
    """--range START:END (END may be empty: to the end) as seconds."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first, last = float(start), float(end) if end.strip() else 0.0
    except ValueError:
        raise UsageError(
            f"--range {text}: give START:END in seconds, e.g. 4.5:9 (or 4.5: for to the end)"
        ) from None
    if not (first >= 0 and (last == 0 or last > first)):
        raise UsageError(f"--range {text}: START must be >= 0 and END after it (or empty)")
    return first, last


def checked_audio(args: argparse.Namespace) -> Iterator[pb.AudioChunk]:
    """--audio as a source of AudioChunk messages, checked (a file, or - for stdin)."""
    label = f"--audio {args.audio}"
    if args.audio == "-":
        if getattr(args, "realtime", False):
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
    if getattr(args, "realtime", False):
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


def is_special(path: str) -> bool:
    """An existing output that is not a regular file (/dev/null, a named pipe)."""
    p = Path(path)
    return p.exists() and not p.is_file() and not p.is_dir()


def check_output(path: str, flag: str, inputs: list[str]) -> None:
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
