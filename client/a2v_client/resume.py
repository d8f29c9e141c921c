"""Resuming a Generate stream after a dropped connection.

``ResumeTracker`` holds the decisions both clients make while reading a Generate stream (which
responses to pass on, whether a failure can be resumed, how long to wait, what to cancel); the
clients only do the I/O, blocking or asyncio.
"""

from __future__ import annotations

import zlib

import grpc
from grpc_status import rpc_status

from a2v.v1 import audio_to_video_pb2 as pb

from .errors import A2VClientError

#: failures that mean the connection broke, not that the server refused the generation
_TRANSPORT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class ResumeTracker:
    """Follows a Generate stream so that a dropped connection can be resumed.

    Remembers the resume token and the last chunk received, checks each chunk's CRC-32, and
    turns a transport failure (no status from the server) into a Resume request. A status the
    server sent (an error of the generation itself) is raised as it is.
    """

    MAX_ATTEMPTS = 5

    def __init__(self, address: str = "") -> None:
        self.address = address
        self.token = ""
        self.last: int | None = None
        self.attempts = 0

    def accept(self, response: pb.GenerateResponse) -> bool:
        """False for a response already delivered before a resume (a repeated Accepted)."""
        kind = response.WhichOneof("message")
        if kind == "accepted":
            if self.token:
                return False
            self.token = response.accepted.resume_token
        elif kind == "chunk":
            chunk = response.chunk
            if chunk.crc32 and zlib.crc32(chunk.data) != chunk.crc32:
                raise A2VClientError(
                    "DATA_LOSS", f"chunk {chunk.sequence_number} arrived corrupted (CRC-32)"
                )
            self.last = chunk.sequence_number
        return True

    def resume_request(self, error: grpc.RpcError) -> pb.ResumeRequest:
        """The Resume request that continues the stream; raises ``A2VClientError`` when the
        failure cannot be resumed (a server status, no token yet, attempts used up)."""
        server_status = rpc_status.from_call(error) is not None
        transport = error.code() in _TRANSPORT_CODES
        if server_status or not transport or not self.token or self.attempts >= self.MAX_ATTEMPTS:
            raise A2VClientError.from_rpc_error(error, self.address) from None
        self.attempts += 1
        request = pb.ResumeRequest(resume_token=self.token)
        if self.last is not None:
            request.last_sequence = self.last
        return request

    def backoff(self) -> float:
        """Seconds to wait before the next Resume: 0.2, 0.4, 0.8, ... at most 2."""
        return min(2.0, 0.2 * 2 ** (self.attempts - 1))

    def cancel_request(self) -> pb.CancelRequest | None:
        """When the caller stops reading early: what frees the server side (None before the
        server accepted the stream: then cancelling the call is enough)."""
        return pb.CancelRequest(resume_token=self.token) if self.token else None
