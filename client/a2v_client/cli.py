"""The ``a2v`` command line: generate, analyze, faces, models, health.

Everything that can be checked here is checked before a connection is made: option values
(``GenerateOptions.to_proto``), input files (``files.check_input_file``), the output path and
the TLS files. Each mistake ends the command with one line that names the option and what to
give instead. Exit statuses: 0 done, 1 the server refused or failed (its status name is
printed), 2 a usage mistake found here, 130 interrupted, 141 the reader of stdout went away.

The modules: ``cli_parser`` (the command line, its usage and exit statuses) with
``cli_options`` (the options and their help texts), ``cli_checks`` (everything checked before
connecting), ``cli_generate`` (the generate command's output), ``cli_analyze`` (the analyze
command) and ``cli_messages`` (mistakes, server errors and warnings as printed). This one runs
a command (``main``): generate, analyze, faces, models, health, and the exit status of a closed pipe
or Ctrl-C.
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

import contextlib

from a2v.v1 import audio_to_video_pb2 as pb

from .cli_analyze import prepare_analyze, prepare_faces, run_analyze, run_faces
from .cli_checks import (
    UsageError,
    api_key,
    checked_address,
    prepare_generate,
    tls_files,
)
from .cli_generate import run_generate
from .cli_messages import OPTION_FLAGS, field_flag, print_server_error, usage_error
from .cli_parser import (
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_SERVER,
    EXIT_USAGE,
    SYNOPSIS_WIDTH,
    build_parser,
    synopsis,
)
from .client import Client
from .errors import A2VClientError
from .files import InputFormatError
from .options import OptionError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "EXIT_SERVER",
    "EXIT_USAGE",
    "OPTION_FLAGS",
    "SYNOPSIS_WIDTH",
    "UsageError",
    "build_parser",
    "main",
    "synopsis",
]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            tls = tls_files(args)
            if args.command == "generate":
                job = prepare_generate(args)
            elif args.command == "analyze":
                audio = prepare_analyze(args)
            elif args.command == "faces":
                prepare_faces(args)
            client = Client(checked_address(args), api_key=api_key(args), tls=tls)
        except (UsageError, OptionError, InputFormatError, OSError, ValueError) as error:
            return usage_error(error)
        with client:
            if args.command == "generate":
                return run_generate(client, args, job)
            if args.command == "analyze":
                return run_analyze(client, args, audio)
            if args.command == "faces":
                return run_faces(client, args)
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
        print_server_error(error, args)
        return EXIT_SERVER
    except BrokenPipeError:  # the reader of stdout (or stderr) went away
        _pipes_gone()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("a2v: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


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
        flags = dict.fromkeys(field_flag(s) for s in m.settings if field_flag(s) != s)
        if flags:
            print("  options: " + " ".join(flags))


if __name__ == "__main__":
    sys.exit(main())
