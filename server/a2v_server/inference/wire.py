"""Triton's streaming inference requests, serialised with one copy of the tensors.

tritonclient builds a ``ModelInferRequest`` from ``InferInput``s: each tensor is copied by
``tobytes()``, again into the protobuf message, and again by ``SerializeToString()``, each into
a fresh multi-megabyte buffer. For lipsync's face windows that was most of the server's work
per frame outside the codecs (measured here, a request of 3 frames: 512x512 6.7 ms, a 720p
window 16.3 ms, a 1080p window 42.5 ms; this way 0.27, 0.65 and 2.6 ms).

A protobuf message is the concatenation of its fields, and repeated fields may come in any
number of pieces, so the request is serialised without its tensors and each tensor is appended
as one ``raw_input_contents`` field (field 7, length-delimited): a single ``bytes.join`` copies
it. Triton parses the same message (tests/unit/test_wire.py compares it with tritonclient's).

``WireClient.stream_infer`` streams such requests over the tritonclient's own gRPC channel and
answers as tritonclient's ``stream_infer`` does: ``(InferResult, None)`` or ``(None, error)``;
``WireClient.infer`` makes a unary call (face analysis of a whole 1080p frame: 6 MB) and
answers or raises as tritonclient's ``infer`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import InferResult, service_pb2
from tritonclient.grpc._utils import get_error_grpc
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

#: numpy dtype name -> Triton datatype
DTYPES = {
    "bool": "BOOL",
    "float32": "FP32",
    "uint8": "UINT8",
    "int32": "INT32",
    "int64": "INT64",
    "uint64": "UINT64",
    "object": "BYTES",
}
#: the tag of ModelInferRequest.raw_input_contents (field 7, wire type 2)
_RAW_INPUT = bytes([7 << 3 | 2])
_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
_UNARY = "/inference.GRPCInferenceService/ModelInfer"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _raw(value: np.ndarray) -> bytes | memoryview:
    if value.dtype == np.object_:  # BYTES: each element length-prefixed, as Triton reads it
        serialized = serialize_byte_tensor(value)
        return serialized.item() if serialized.size else b""
    return np.ascontiguousarray(value).reshape(-1).view(np.uint8).data


def infer_request(
    model: str,
    tensors: Mapping[str, np.ndarray],
    *,
    request_id: str = "",
    sequence_id: int | None = None,
    start: bool = False,
    end: bool = False,
) -> bytes:
    """A serialised ModelInferRequest, its tensors as raw input contents; with a
    ``sequence_id``, a request of that sequence."""
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for name, value in tensors.items():
        tensor = request.inputs.add()
        tensor.name = name
        tensor.datatype = DTYPES[value.dtype.name]
        tensor.shape.extend(value.shape)
    if sequence_id is not None:
        request.parameters["sequence_id"].int64_param = sequence_id
        request.parameters["sequence_start"].bool_param = start
        request.parameters["sequence_end"].bool_param = end
    pieces: list[bytes | memoryview] = [request.SerializeToString()]
    for value in tensors.values():
        data = _raw(value)
        pieces += [_RAW_INPUT, _varint(len(data)), data]
    return b"".join(pieces)


class WireClient:
    """Streams pre-serialised requests (``{"request_id": ..., "data": bytes}``) to Triton on a
    tritonclient's channel (its ``_channel``: tritonclient is pinned, and a second connection
    to the same Triton would be one more thing to close)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def stream_infer(
        self,
        requests: AsyncIterator[dict],
        stream_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[tuple[InferResult | None, InferenceServerException | None]]:
        call = self._client._channel.stream_stream(
            _METHOD,
            request_serializer=None,  # the requests are bytes already
            response_deserializer=service_pb2.ModelStreamInferResponse.FromString,
        )(
            _data(requests),
            metadata=tuple(headers.items()) if headers else None,
            timeout=stream_timeout,
        )
        return _answers(call)

    async def infer(
        self,
        model: str,
        tensors: Mapping[str, np.ndarray],
        *,
        client_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> InferResult:
        """One unary inference; errors raise InferenceServerException as tritonclient's do."""
        call = self._client._channel.unary_unary(
            _UNARY,
            request_serializer=None,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        try:
            response = await call(
                infer_request(model, tensors),
                metadata=tuple(headers.items()) if headers else None,
                timeout=client_timeout,
            )
        except grpc.RpcError as exc:
            raise get_error_grpc(exc) from None
        return InferResult(response)


async def _data(requests: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request["data"]


async def _answers(call) -> AsyncIterator[tuple[InferResult | None, Any]]:
    async for response in call:
        if response.error_message:
            yield None, InferenceServerException(msg=response.error_message)
        else:
            yield InferResult(response.infer_response), None
