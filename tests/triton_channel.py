"""A stand-in for tritonclient's gRPC channel that answers Triton's unary ModelInfer, for
units that drive TritonBackend without a Triton: the request goes through the real one-copy
serialisation (inference/wire.py) and comes back as a real ModelInferResponse."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tritonclient.grpc import service_pb2

from a2v_server.inference.wire import DTYPES


class UnaryChannel:
    """``answer(request) -> {output name: array}``; keeps every request and its metadata."""

    def __init__(
        self, answer: Callable[[service_pb2.ModelInferRequest], dict[str, np.ndarray]]
    ) -> None:
        self._answer = answer
        self.requests: list[service_pb2.ModelInferRequest] = []
        self.metadata: list[dict[str, str]] = []

    def unary_unary(self, method: str, request_serializer=None, response_deserializer=None):
        assert method == "/inference.GRPCInferenceService/ModelInfer", method

        async def call(data: bytes, metadata=None, timeout=None):
            request = service_pb2.ModelInferRequest.FromString(data)
            self.requests.append(request)
            self.metadata.append(dict(metadata or ()))
            response = service_pb2.ModelInferResponse(model_name=request.model_name)
            for name, value in self._answer(request).items():
                output = response.outputs.add()
                output.name, output.datatype = name, DTYPES[value.dtype.name]
                output.shape.extend(value.shape)
                response.raw_output_contents.append(np.ascontiguousarray(value).tobytes())
            return response_deserializer(response.SerializeToString())

        return call
