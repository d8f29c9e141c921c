"""Resume and Cancel of a session that another replica owns: the call goes on to the owner.

Behind a load balancer that spreads calls over the replicas (the client balances per call), a
Resume after a dropped connection reaches any replica. The token names the owner, and is
signed (tokens.py), so the replica that gets it opens a gRPC call to the owner's advertised
address, with the caller's own credentials (its ``authorization`` metadata, so the owner checks
the API key as for any call) and deadline, and relays the responses as they come. One hop
only: a forwarded call (``a2v-forwarded`` metadata) that does not find its session where the
token says is NOT_FOUND, never forwarded again.

The owner answers for its session; its status (NOT_FOUND, CANCELLED, OUT_OF_RANGE, ...) is
relayed as it is. An owner that cannot be reached (it was drained and has exited, or the
network is down) is UNAVAILABLE, with the address, so the client may retry.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server.settings import Settings

log = logging.getLogger(__name__)

#: metadata on a call one replica makes to another on a caller's behalf (its value: the
#: forwarding replica's address, for the owner's logs)
FORWARDED = "a2v-forwarded"
#: the caller's metadata that goes along
_PASSED_ON = ("authorization",)


class PeerError(Exception):
    """The owner's answer (or the failure to reach it), to end the caller's call with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def own_address(settings: Settings) -> str:
    """How the other replicas reach this one: ``advertise_address``, else the listen address
    when it names one host, else this host's name resolved with the listen port (a container
    or pod listening on every interface); "" when none resolves (no forwarding here)."""
    if settings.advertise_address:
        return settings.advertise_address
    host, _, port = settings.listen.rpartition(":")
    if host.strip("[]") not in ("", "0.0.0.0", "::"):
        return settings.listen
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        log.warning("this host's name does not resolve: resume tokens are for this server only")
        return ""
    return f"{ip}:{port}"


def forwarded(context: grpc.aio.ServicerContext) -> bool:
    return any(name == FORWARDED for name, _ in context.invocation_metadata() or ())


class Peers:
    """gRPC channels to the other replicas, opened on first use and kept."""

    def __init__(self, settings: Settings, own_address: str) -> None:
        self._own = own_address
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials: grpc.ChannelCredentials | None = None
        if settings.tls_cert_file:  # the replicas serve TLS: so are they called
            ca = settings.peer_tls_ca_file
            roots = Path(ca).read_bytes() if ca else None
            cert = key = None
            if settings.tls_client_ca_file:  # mutual TLS: this replica shows its own cert
                cert = Path(settings.tls_cert_file).read_bytes()
                key = Path(settings.tls_key_file).read_bytes()
            self._credentials = grpc.ssl_channel_credentials(roots, key, cert)

    def _stub(self, owner: str) -> pb_grpc.AudioToVideoStub:
        channel = self._channels.get(owner)
        if channel is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(owner, self._credentials)
            else:
                channel = grpc.aio.insecure_channel(owner)
            self._channels[owner] = channel
        return pb_grpc.AudioToVideoStub(channel)

    def _metadata(self, context: grpc.aio.ServicerContext) -> list[tuple[str, str | bytes]]:
        passed = [(k, v) for k, v in context.invocation_metadata() or () if k in _PASSED_ON]
        return [*passed, (FORWARDED, self._own)]

    async def resume(
        self, owner: str, request: pb.ResumeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        """The owner's Resume responses, relayed; its failure as PeerError."""
        log.info("resume: the session is %s's; forwarding", owner)
        call = self._stub(owner).Resume(
            request, metadata=self._metadata(context), timeout=context.time_remaining()
        )
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise _peer_error(owner, error) from None
        finally:
            call.cancel()  # the caller went away: so does the relayed call (no-op when done)

    async def cancel(
        self, owner: str, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelResponse:
        log.info("cancel: the session is %s's; forwarding", owner)
        try:
            return await self._stub(owner).Cancel(
                request, metadata=self._metadata(context), timeout=context.time_remaining()
            )
        except grpc.aio.AioRpcError as error:
            raise _peer_error(owner, error) from None

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _peer_error(owner: str, error: grpc.aio.AioRpcError) -> PeerError:
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:  # not reached, or shutting down: worth a retry
        details = f"the server replica that runs this generation ({owner}): {details}"
    return PeerError(code, details)
