"""The ``a2v`` command line as argparse sees it: the commands, the exit statuses (their values
and the text ``--help`` shows), one-line syntax errors, and the usage lines that the README's
synopsis is made of (``synopsis``). The options themselves are in ``cli_options``.
"""

from __future__ import annotations

import argparse
import functools
import signal
from typing import NoReturn

from .cli_options import add_analyze, add_faces, add_generate, connection_options, paragraphs

EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 130, 128 + signal.SIGPIPE
#: the width the README's synopsis is made with (tests/unit/test_cli_local.py checks it)
SYNOPSIS_WIDTH = 100


EXIT_STATUSES = """exit status:
  0    done
  1    the server refused or failed (its gRPC status name and message are printed), or
       it could not be reached
  2    a usage mistake found before connecting (an option value, an input file, the output)
  130  interrupted (Ctrl-C); the call is cancelled on the server
  141  stdout was closed by its reader (a2v generate -o - | head -c 1000): the call is
       cancelled on the server and a2v stops quietly, as a Unix tool killed by SIGPIPE"""


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


def build_parser(width: int | None = None) -> argparse.ArgumentParser:
    """The whole command line (``width``: fixed help width, for the README synopsis)."""
    formatter = functools.partial(_Formatter, width=width)
    parser = _Parser(
        prog="a2v",
        description=paragraphs(
            "a2v audio-to-video client: sends audio and a portrait (or a speaker video) to an "
            "a2v server and writes the video it streams back. 'a2v COMMAND --help' tells more."
        ),
        epilog=EXIT_STATUSES
        + "\n\n"
        + paragraphs(
            "environment: A2V_SERVER, A2V_API_KEY, A2V_TLS_CA, A2V_TLS_CERT, A2V_TLS_KEY (the "
            "defaults of the options above); GRPC_VERBOSITY=ERROR shows gRPC's own log."
        ),
        formatter_class=formatter,
    )
    connection_options(parser, hidden=False)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    add_generate(sub, formatter, EXIT_STATUSES)
    add_analyze(sub, formatter, EXIT_STATUSES)
    add_faces(sub, formatter, EXIT_STATUSES)
    models = sub.add_parser(
        "models",
        help="the server's models: readiness, inputs, prompt words and the options they use",
        formatter_class=formatter,
    )
    connection_options(models, hidden=True)
    health = sub.add_parser(
        "health",
        help="print the server's health; exit 0 only when it is SERVING",
        formatter_class=formatter,
    )
    connection_options(health, hidden=True)
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
