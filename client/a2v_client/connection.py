"""How the client reaches the server: plaintext or TLS / mutual TLS, and the API key.

The key travels as ``authorization: Bearer <key>`` metadata on every call, added by a channel
interceptor so that each RPC method need not remember it (and plaintext channels work too,
which gRPC call credentials refuse).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from . import tracing
from .interceptors import MetadataInterceptor, add_metadata, aio_metadata_interceptors


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS channel: ``ca`` verifies the server (None = the system roots);
    ``cert`` and ``key`` are the client's own certificate for mutual TLS."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def from_env(cls) -> TlsFiles | None:
        """From ``A2V_TLS_CA``, ``A2V_TLS_CERT``, ``A2V_TLS_KEY``; None when none is set."""
        files = cls(
            os.environ.get("A2V_TLS_CA") or None,
            os.environ.get("A2V_TLS_CERT") or None,
            os.environ.get("A2V_TLS_KEY") or None,
        )
        return files if (files.ca or files.cert or files.key) else None

    def check(self, labels: dict[str, str] | None = None) -> None:
        """Raise ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` or
        ``ValueError`` (not PEM, or a certificate without its key) naming the file; ``labels``
        names the fields ("ca", "cert", "key") in the messages."""
        names = {"ca": "TLS CA file", "cert": "client certificate", "key": "client key"}
        names.update(labels or {})
        if bool(self.cert) != bool(self.key):
            raise ValueError(
                f"a client certificate needs its key: give both {names['cert']} and "
                f"{names['key']} (mutual TLS), or neither"
            )
        for field, marker in (("ca", b"CERTIFICATE"), ("cert", b"CERTIFICATE"), ("key", b"KEY")):
            path = getattr(self, field)
            if path:
                _check_pem(Path(path), f"{names[field]} {path!r}", marker)

    def credentials(self) -> grpc.ChannelCredentials:
        self.check()

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca),
            private_key=read(self.key),
            certificate_chain=read(self.cert),
        )


def _check_pem(path: Path, label: str, marker: bytes) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{label}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{label}: is a folder; give a PEM file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise type(error)(f"{label}: cannot be read ({error.strerror or error})") from None
    if not any(marker in block for block in re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)):
        what = "private key" if marker == b"KEY" else "certificate"
        raise ValueError(f"{label}: not a PEM {what} (no '-----BEGIN ...{marker.decode()}-----')")


def api_key_from_env() -> str | None:
    return os.environ.get("A2V_API_KEY") or None


def _with_key(details: Any, key: str) -> Any:
    return add_metadata(details, [("authorization", f"Bearer {key}")])


def open_channel(
    address: str,
    options: Sequence[tuple[str, Any]],
    *,
    api_key: str | None = None,
    tls: TlsFiles | None = None,
) -> grpc.Channel:
    """A blocking channel; TLS when ``tls`` is given; the key on every call when given."""
    if tls is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = grpc.secure_channel(address, tls.credentials(), options=options)
    if api_key:
        channel = grpc.intercept_channel(
            channel, MetadataInterceptor(partial(_with_key, key=api_key))
        )
    # the caller's trace context, when OpenTelemetry is installed (optional)
    if tracing.available():
        channel = grpc.intercept_channel(channel, tracing.TraceInterceptor())
    return channel


def open_aio_channel(
    address: str,
    options: Sequence[tuple[str, Any]],
    *,
    api_key: str | None = None,
    tls: TlsFiles | None = None,
) -> grpc.aio.Channel:
    """The asyncio counterpart of ``open_channel``."""
    interceptors: list[grpc.aio.ClientInterceptor] = []
    if api_key:
        interceptors += aio_metadata_interceptors(partial(_with_key, key=api_key))
    interceptors += tracing.aio_interceptors()
    if tls is None:
        return grpc.aio.insecure_channel(
            address, options=options, interceptors=interceptors or None
        )
    return grpc.aio.secure_channel(
        address, tls.credentials(), options=options, interceptors=interceptors or None
    )
