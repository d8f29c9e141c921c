"""What ``a2v`` prints on stderr about a request: a usage mistake (exit status 2), the server's
error with the option it is about and what to check (exit status 1), and the server's
``Accepted`` (the settings chosen, and warnings about settings and prompt words without
effect). Field paths of the server's answers are named by the options that set them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from a2v.v1 import audio_to_video_pb2 as pb

from .cli_checks import server_address
from .cli_parser import EXIT_USAGE
from .errors import A2VClientError
from .options import OptionError

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
    "range": "--range",
    "speakers": "--speakers",
    "channel_speakers": "--speakers",
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
    "range": "--range",
    "range.start_seconds": "--range",
    "range.end_seconds": "--range",
    "speakers": "--speakers",
    "channel_speakers": "--speakers",
}


def usage_error(error: BaseException) -> int:
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


def print_accepted(a: pb.Accepted, args: argparse.Namespace) -> None:
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
        print(f"a2v: warning: {field_flag(field)} is ignored: {why}", file=sys.stderr)
    for entry in a.warnings:
        field, _, why = entry.partition(": ")
        print(f"a2v: warning: {field_flag(field)}: {why}", file=sys.stderr)


def field_flag(field: str) -> str:
    """The option for a field path of the server's ("config.output.fps", "sync_mode", ...)."""
    path = field.removeprefix("config.")
    for prefix in (path, path.rsplit(".", 1)[0]):
        if prefix in _FIELD_FLAGS:
            return _FIELD_FLAGS[prefix]
        if f"config.{prefix}" in _FIELD_FLAGS:
            return _FIELD_FLAGS[f"config.{prefix}"]
    return field


def print_server_error(error: A2VClientError, args: argparse.Namespace) -> None:
    """One line: the status name, the message and the option it is about; a field violation
    gets a line of its own only when its words are not in the message already."""
    message = error.message or "(the server sent no message)"
    if error.reason:
        message += _connection_hint(error.reason, args)
    if error.retry_delay is not None:
        message += f" (the server says: try again in {error.retry_delay:g} s)"
    options, more = [], []
    for field, description in error.violations:
        flag = field_flag(field)
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
    source = server_address(args)[1]
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
