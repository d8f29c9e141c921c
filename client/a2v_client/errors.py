"""The client's one exception, ``A2VClientError``, and the turning of gRPC failures into it.

A failure to reach the server at all (nothing listening, a name that does not resolve, a TLS
mismatch) has no status from the server, only gRPC's transport text: ``from_rpc_error`` turns it
into one line that names the address and what to check, with ``reason`` saying which it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: reason -> (patterns in gRPC's transport text, what to say; {address} is filled in)
_CONNECTION_FAILURES: dict[str, tuple[str, str]] = {
    "tls_files": (
        r"Failed to create security handshaker",
        "the TLS files could not be used to connect to {address}: the CA must be a PEM "
        "certificate, and the key the private key of the client certificate",
    ),
    "not_tls": (
        r"WRONG_VERSION_NUMBER|wrong version number",
        "{address} does not speak TLS: connect without TLS, or to the server's TLS port",
    ),
    "tls_name": (
        r"Peer name .* is not in peer certificate|hostname mismatch",
        "the TLS certificate of {address} is not for that name: connect by a name it lists",
    ),
    "tls_untrusted": (
        r"CERTIFICATE_VERIFY_FAILED|certificate signature failure|BAD_SIGNATURE|"
        r"unable to get local issuer|self.signed|certificate verify",
        "the TLS certificate of {address} is not trusted: give the CA that signed it",
    ),
    "refused": (
        r"Connection refused|connection refused|connect failed.*No such file or directory",
        "nothing answers at {address} (connection refused): check the address and that the "
        "a2v server is running",
    ),
    "dns": (
        r"Domain name not found|errors resolving|DNS resolution failed|hostname lookup|"
        r"Name or service not known|name resolution",
        "the host name in {address} does not resolve: check the address",
    ),
    "timeout": (
        r"timed out|Timeout occurred|Connection timed out",
        "no answer from {address} (the connection timed out): check the address and any "
        "firewall between here and there",
    ),
    "closed": (
        r"Socket closed|Connection reset|Broken pipe|handshake",
        "{address} closed the connection while it was being set up: the server may need TLS "
        "(a CA to verify it) or a client certificate (mutual TLS), or it is not an a2v server",
    ),
}


class A2VClientError(Exception):
    """A failed call: ``code`` is the gRPC status code name, ``message`` the server's text;
    ``retry_delay`` (seconds) when the server said when to try again. When the server could
    not be reached, ``reason`` says why ("refused", "dns", "timeout", "closed", "not_tls",
    "tls_untrusted", "tls_name", "tls_files"), ``message`` says what to check and
    ``transport_details`` keeps gRPC's own text."""

    def __init__(
        self,
        code: str,
        message: str,
        violations: list[tuple[str, str]] | None = None,
        retry_delay: float | None = None,
        *,
        reason: str = "",
        transport_details: str = "",
    ):
        self.code = code
        self.message = message
        self.violations = violations or []
        self.retry_delay = retry_delay
        self.reason = reason
        self.transport_details = transport_details
        super().__init__(f"{code}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, address: str = "") -> A2VClientError:
        violations = []
        retry_delay = None
        status = rpc_status.from_call(error)
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations += [(v.field, v.description) for v in bad.field_violations]
        code = error.code().name
        details = error.details() or ""
        if status is None and code == "UNAVAILABLE":
            reason, message = connection_failure(details, address or "the server")
            if reason:
                return cls(code, message, reason=reason, transport_details=details)
        return cls(code, details, violations, retry_delay)


def connection_failure(details: str, address: str) -> tuple[str, str]:
    """``(reason, message)`` for gRPC's text about a connection that could not be made;
    ``("", details)`` when the text is not one of those."""
    for reason, (pattern, message) in _CONNECTION_FAILURES.items():
        if re.search(pattern, details):
            text = message.format(address=address)
            if reason in ("refused", "timeout", "closed") and not _has_port(address):
                text += "; the address names no port, so gRPC used 443: give HOST:PORT"
            return reason, text
    return "", details


def _has_port(address: str) -> bool:
    if address.startswith(("unix:", "unix-abstract:", "vsock:")) or address == "the server":
        return True
    port = address.rsplit(":", 1)[-1] if ":" in address.rsplit("]", 1)[-1] else ""
    return port.isdigit()


@contextmanager
def client_errors(address: str = "") -> Iterator[None]:
    """Raise a ``grpc.RpcError`` from the block as ``A2VClientError`` (works around ``await``
    too: the blocking and the asyncio client share it)."""
    try:
        yield
    except grpc.RpcError as error:
        raise A2VClientError.from_rpc_error(error, address) from None
