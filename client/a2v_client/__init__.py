"""a2v client: stream audio and a portrait to an a2v server, receive fragmented MP4."""

from .client import (
    A2VClientError,
    AsyncClient,
    Client,
    GenerateOptions,
    bytes_audio,
    file_audio,
    pcm_audio,
    realtime,
    request_stream,
)
from .connection import TlsFiles

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
