"""Who may talk to the server: TLS / mutual TLS on the port, API keys, per-key stream limits.

* ``bind`` opens the gRPC port: TLS when a certificate is configured (client certificates
  required when a client CA is), plaintext otherwise — and plaintext only on loopback unless
  ``allow_insecure`` says so.
* ``AuthInterceptor`` checks ``authorization: Bearer <key>`` on every call except health and
  reflection (probes and tooling must work without a key) and tells the servicer which key
  called (``caller_key``). Keys are never logged: a key is named by a short hash of itself.
* ``StreamLimiter`` caps the running generations per key: the servicer takes a slot for each
  Generate call, and the generation (not the call) holds it until it ends.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from a2v_server.settings import Settings

log = logging.getLogger(__name__)

#: methods that need no key: health for load balancers and kubelet probes, reflection for tools
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
#: the methods that run with ``caller_key`` set (without keys every caller is ANONYMOUS)
SERVICE_PREFIX = "/a2v.v1.AudioToVideo/"
#: the retry hint sent with RESOURCE_EXHAUSTED: clips take seconds, so a few seconds is fair
RETRY_AFTER_SECONDS = 5
ANONYMOUS = "anonymous"


# --- the port -------------------------------------------------------------------------------------
def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' files, or None for plaintext."""
    if not settings.tls_cert_file:
        return None
    cert = Path(settings.tls_cert_file).read_bytes()
    key = Path(settings.tls_key_file).read_bytes()
    client_ca = None
    if settings.tls_client_ca_file:
        client_ca = Path(settings.tls_client_ca_file).read_bytes()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Open ``settings.listen`` on ``server``; returns the port. Refuses unsafe plaintext."""
    settings.validated()  # plaintext off loopback is refused there, also for hand-made settings
    credentials = server_credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, credentials)
    except RuntimeError:  # gRPC's "Failed to bind to address ..."
        port = 0
    if port == 0:
        raise RuntimeError(
            f"cannot listen on {settings.listen}: the port is in use (another a2v-server?) or "
            "the address is not this machine's; set A2V_LISTEN"
        )
    mode = (
        "plaintext"
        if credentials is None
        else ("mutual TLS" if settings.tls_client_ca_file else "TLS")
    )
    log.info("listening on %s with %s", settings.listen, mode)
    return port


# --- API keys -------------------------------------------------------------------------------------
def load_api_keys(path: str | Path) -> list[str]:
    """Keys from a file, one per line; blank lines and ``#`` comments are ignored."""
    keys = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    if not keys:
        raise ValueError(f"the API keys file {path} holds no keys")
    return keys


def key_id(key: str) -> str:
    """A name for a key that is safe to log: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyChecker:
    """Constant-time lookup of a presented key among the configured ones."""

    def __init__(self, keys: list[str]) -> None:
        # Digests have one length, so the comparison leaks neither content nor length.
        self._digests = [(hashlib.sha256(k.encode()).digest(), key_id(k)) for k in keys]

    def identify(self, presented: str) -> str | None:
        """The id of the matching key, or None. Compares with every key, no early exit."""
        digest = hashlib.sha256(presented.encode()).digest()
        match = None
        for known, ident in self._digests:
            if hmac.compare_digest(known, digest) and match is None:
                match = ident
        return match


def bearer_token(metadata: Any) -> str | None:
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


# --- concurrent streams ---------------------------------------------------------------------------
#: the key id of the call being handled (ANONYMOUS without configured keys): set by
#: AuthInterceptor for the AudioToVideo methods, read by the servicer, whose generations hold
#: the key's stream slots and whose sessions belong to the key that started them
caller_key: ContextVar[str] = ContextVar("a2v_caller_key", default=ANONYMOUS)


class Slot:
    """One held stream slot of a key; ``release`` frees it (a second call does nothing)."""

    def __init__(self, limiter: StreamLimiter, key: str) -> None:
        self._limiter = limiter
        self.key = key
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter.release(self.key)


class StreamLimiter:
    """Counts the running generations per key. Used from the event loop only, so no lock.

    A slot is held by a generation, not by a call: the Generate call takes it before it reads
    the config, and hands it to its session, which frees it when the generation ends or is
    cancelled. A resumable generation whose client went away keeps its slot while it renders
    detached; a Resume reads a generation that already holds one.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def try_acquire(self, key: str) -> Slot | None:
        if self._open.get(key, 0) >= self.limit:
            return None
        self._open[key] = self._open.get(key, 0) + 1
        return Slot(self, key)

    def release(self, key: str) -> None:
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)

    def refusal(self, key: str) -> grpc.Status:
        """RESOURCE_EXHAUSTED with a retry hint, for a Generate or Analyze call over its key's
        limit."""
        return _status(
            code_pb2.RESOURCE_EXHAUSTED,
            f"too many concurrent Generate and Analyze streams "
            f"{'on this server' if key == ANONYMOUS else 'for this API key'} (limit "
            f"{self.limit}; a resumable generation whose call ended keeps its slot until it "
            f"finishes or is cancelled): retry in {RETRY_AFTER_SECONDS} s or when one of "
            "your generations ends",
            retry_after=RETRY_AFTER_SECONDS,
        )


# --- the interceptor ------------------------------------------------------------------------------
def _status(code: int, message: str, retry_after: float | None = None) -> grpc.Status:
    status = status_pb2.Status(code=code, message=message)
    if retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after)))
        )
        status.details.append(detail)
    return rpc_status.to_status(status)


def _denying_handler(handler: grpc.RpcMethodHandler, status: grpc.Status) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that ends the call with ``status``."""

    async def deny_unary(request_or_iterator, context):
        await context.abort_with_status(status)

    async def deny_stream(request_or_iterator, context):
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny_unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny_unary, **kwargs)


def _as_caller(handler: grpc.RpcMethodHandler, key: str) -> grpc.RpcMethodHandler:
    """``handler``, run with ``caller_key`` set to ``key`` (in the call's own task)."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        streaming = handler.stream_stream or handler.unary_stream
        assert streaming is not None
        inner_streaming: Callable[..., Any] = streaming  # an async generator under grpc.aio

        async def keyed_stream(request_or_iterator, context):
            caller_key.set(key)
            async for response in inner_streaming(request_or_iterator, context):
                yield response

        factory = (
            grpc.stream_stream_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return factory(keyed_stream, **kwargs)
    unary = handler.stream_unary or handler.unary_unary
    assert unary is not None
    inner_unary: Callable[..., Any] = unary  # a coroutine function under grpc.aio

    async def keyed_unary(request_or_iterator, context):
        caller_key.set(key)
        return await inner_unary(request_or_iterator, context)

    factory = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return factory(keyed_unary, **kwargs)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """API-key check on every call (when keys are configured); the AudioToVideo handlers run
    with ``caller_key`` set to the key's id, for the per-key stream limit in the servicer."""

    def __init__(self, keys: list[str] | None) -> None:
        self._checker = KeyChecker(keys) if keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthInterceptor:
        keys = load_api_keys(settings.api_keys_file) if settings.api_keys_file else None
        if keys:
            log.info("API keys required: %d configured", len(keys))
        return cls(keys)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self._checker is not None:
            token = bearer_token(handler_call_details.invocation_metadata)
            ident = self._checker.identify(token) if token is not None else None
            if ident is None:
                log.info("rejected %s: %s API key", method, "no" if token is None else "wrong")
                return _denying_handler(
                    handler,
                    _status(
                        code_pb2.UNAUTHENTICATED,
                        ("no API key" if token is None else "the API key is not valid")
                        + ": send metadata 'authorization: Bearer <key>' "
                        "(a2v --api-key KEY, or set A2V_API_KEY)",
                    ),
                )
            if method.startswith(SERVICE_PREFIX):
                return _as_caller(handler, ident)
        return handler
