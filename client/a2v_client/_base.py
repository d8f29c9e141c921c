"""What ``Client`` (blocking) and ``AsyncClient`` (asyncio) share: the channel and its stubs,
the call timeouts, and the requests and replies that are the same in both.

The two clients differ only in how they wait (blocking calls or ``await``); everything they
decide alike lives here, in ``resume.py`` (reading a Generate stream) and in ``sources.py``
(the request stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc

from .connection import TlsFiles, api_key_from_env
from .options import GenerateOptions
from .sources import Video, check_audio, check_visual, generate_config, image_bytes

DEFAULT_ADDRESS = "127.0.0.1:50051"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    # Spread calls over every address the name resolves to (a headless Kubernetes Service
    # lists each server pod), instead of sending them all down the first connection.
    ("grpc.lb_policy_name", "round_robin"),
    # Connections of this client's own: gRPC shares a process's connections to one address
    # between channels, so a new client to a server that restarted on that address (a pod
    # restart, a test's server on a port used before) got the old connection's "connection
    # refused" until its reconnect backoff ran out (up to 2 minutes), while any other client
    # to the old server still lived. Seen as flaky service tests; tests/service/test_restart.py.
    ("grpc.use_local_subchannel_pool", 1),
]
#: seconds for the unary calls (a Generate stream takes the client's own ``timeout``)
MODELS_TIMEOUT = 10
HEALTH_TIMEOUT = 5
CANCEL_TIMEOUT = 2

ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


class ClientBase(Generic[ChannelT]):
    """A connection to an a2v server; subclasses say how to open the channel."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = None,
        api_key: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``api_key`` defaults to ``$A2V_API_KEY``; ``tls`` (PEM files) switches TLS on."""
        key = api_key_from_env() if api_key is None else api_key
        #: the server's address, as given (named in connection errors)
        self.address = address
        self._channel: ChannelT = self._open_channel(address, api_key=key, tls=tls)
        self._stub = pb_grpc.AudioToVideoStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout

    def _open_channel(self, address: str, *, api_key: str | None, tls: TlsFiles | None) -> ChannelT:
        """The channel (blocking or asyncio), opened with ``CHANNEL_OPTIONS``."""
        raise NotImplementedError

    @staticmethod
    def _generate_inputs(
        audio: object,
        image: bytes | str | Path | None,
        video: Video | None,
        options: GenerateOptions | None,
    ) -> tuple[pb.GenerateConfig, bytes | None]:
        """``generate``'s arguments checked before any stream is opened (``OptionError``,
        ``InputFormatError``, ``FileNotFoundError``, ...): the config message and the portrait's
        bytes (None without one)."""
        check_visual(image, video)
        check_audio(audio)
        config = generate_config(options, video)
        return config, (None if image is None else image_bytes(image))

    @staticmethod
    def _health_request(service: str) -> Any:
        return health_pb2.HealthCheckRequest(service=service)

    @staticmethod
    def _serving_status(reply: Any) -> str:
        """SERVING, NOT_SERVING, ... from a health reply."""
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
