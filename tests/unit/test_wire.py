"""The one-copy request serialisation (inference/wire.py) gives Triton the message tritonclient
would have sent: the same inputs, shapes, datatypes, parameters and raw contents."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import _utils, service_pb2

from a2v_server.inference.wire import DTYPES, infer_request


def _tritonclients(model: str, tensors: dict, **sequence) -> service_pb2.ModelInferRequest:
    inputs = []
    for name, value in tensors.items():
        tensor = grpcclient.InferInput(name, list(value.shape), DTYPES[value.dtype.name])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return _utils._get_inference_request(
        model_name=model,
        inputs=inputs,
        model_version="",
        request_id=sequence["request_id"],
        outputs=None,
        sequence_id=sequence["sequence_id"],
        sequence_start=sequence["start"],
        sequence_end=sequence["end"],
        priority=0,
        timeout=None,
        parameters=None,
    )


@pytest.mark.parametrize("start, end", [(True, False), (False, False), (False, True)])
def test_the_same_message_as_tritonclients(start, end):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 300, 200, 3), dtype=np.uint8)
    tensors = {
        "AUDIO": rng.standard_normal(1600).astype(np.float32),
        "FRAMES_IN": frames[:, :, ::2],  # not contiguous: sent as its values
        "SOURCE_INDEX": np.array([7, 8], np.int64),
        "ORIGIN": np.array([10, 20], np.int32),
        "FPS": np.array([25.0], np.float32),
        "EMPTY": np.zeros(0, np.float32),
        "FOUND": np.array([True, False]),
        "TRANSCRIPT": np.array(["héllo world".encode()], dtype=np.object_),
    }
    sequence = {"request_id": "42-3", "sequence_id": 2**61 + 5, "start": start, "end": end}
    ours = service_pb2.ModelInferRequest.FromString(infer_request("lipsync", tensors, **sequence))
    assert ours == _tritonclients("lipsync", tensors, **sequence)
    frames_at = [t.name for t in ours.inputs].index("FRAMES_IN")
    sent = np.frombuffer(ours.raw_input_contents[frames_at], np.uint8).reshape(2, 300, 100, 3)
    assert np.array_equal(sent, frames[:, :, ::2])


def test_a_large_tensor_keeps_its_length():
    """Lengths over 2**21 need a 4-byte varint."""
    big = np.arange(5_000_000, dtype=np.uint8)
    request = service_pb2.ModelInferRequest.FromString(
        infer_request("m", {"X": big}, request_id="1-0", sequence_id=1, start=True, end=False)
    )
    assert request.raw_input_contents[0] == big.tobytes()


def test_a_unary_request_is_tritonclients_without_a_sequence():
    rng = np.random.default_rng(5)
    tensors = {
        "IMAGE": rng.integers(0, 256, (108, 192, 3), dtype=np.uint8),
        "PARTS": np.array([b"beats,phones"], dtype=np.object_),
    }
    ours = service_pb2.ModelInferRequest.FromString(infer_request("face_landmarks", tensors))
    theirs = _tritonclients(
        "face_landmarks", tensors, request_id="", sequence_id=0, start=False, end=False
    )
    assert ours == theirs
    assert not ours.parameters  # no sequence parameters on a unary call
