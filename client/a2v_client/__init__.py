"""a2v client: stream audio and a portrait to an a2v server, receive fragmented MP4.

The modules, in reading order: ``client`` (``Client``, blocking) and ``aio`` (``AsyncClient``),
both built on ``_base``; ``options`` (``GenerateOptions``), ``sources`` (audio sources and the
request stream), ``files`` (input files checked before sending), ``resume`` (continuing a
dropped stream), ``errors`` (``A2VClientError``), ``connection`` (TLS and the API key),
``tracing`` (optional trace propagation), ``cli`` (``a2v``).

The names below are imported on first use, so that importing the package (the ``a2v`` command
does) loads gRPC only when it is needed: the CLI sets gRPC's log level first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client
    from .connection import TlsFiles
    from .errors import A2VClientError
    from .files import InputFormatError
    from .options import GenerateOptions, OptionError
    from .results import audio_kind_name
    from .sources import bytes_audio, file_audio, pcm_audio, realtime, request_stream

_WHERE = {
    "A2VClientError": "errors",
    "AsyncClient": "aio",
    "Client": "client",
    "GenerateOptions": "options",
    "InputFormatError": "files",
    "OptionError": "options",
    "TlsFiles": "connection",
    "audio_kind_name": "results",
    "bytes_audio": "sources",
    "file_audio": "sources",
    "pcm_audio": "sources",
    "realtime": "sources",
    "request_stream": "sources",
}

__all__ = [
    "A2VClientError",
    "AsyncClient",
    "Client",
    "GenerateOptions",
    "InputFormatError",
    "OptionError",
    "TlsFiles",
    "audio_kind_name",
    "bytes_audio",
    "file_audio",
    "pcm_audio",
    "realtime",
    "request_stream",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
