"""a2v client: stream audio and a portrait to an a2v server, receive fragmented MP4.

The modules, in reading order: ``client`` (``Client``, blocking) and ``aio`` (``AsyncClient``),
both built on ``_base``; ``options`` (``GenerateOptions``), ``sources`` (audio sources and the
request stream), ``resume`` (continuing a dropped stream), ``errors`` (``A2VClientError``),
``connection`` (TLS and the API key), ``tracing`` (optional trace propagation), ``cli`` (``a2v``).
"""

from .aio import AsyncClient
from .client import Client
from .connection import TlsFiles
from .errors import A2VClientError
from .options import GenerateOptions
from .sources import bytes_audio, file_audio, pcm_audio, realtime, request_stream

__all__ = [
    "A2VClientError",
    "AsyncClient",
    "Client",
    "GenerateOptions",
    "TlsFiles",
    "bytes_audio",
    "file_audio",
    "pcm_audio",
    "realtime",
    "request_stream",
]
