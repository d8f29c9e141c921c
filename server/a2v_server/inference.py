"""The Triton side: face analysis and streamed avatar rendering, behind a small interface.

``TritonBackend`` is the only module that imports tritonclient. The pipeline talks to the
``Backend`` protocol, so unit tests can stand a fake in for Triton.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from .errors import A2VError, InvalidInput, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

FACE_MODEL = "face_landmarks"
AVATAR_MODEL = "talking_avatar"
_TAG = re.compile(r"\[(INVALID_ARGUMENT|RESOURCE_EXHAUSTED|INTERNAL)\]\s*(.*)", re.S)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (68, 2)


@dataclass(frozen=True)
class FrameBatch:
    first_index: int
    frames: np.ndarray  # (n, H, W, 3) uint8 RGB
    mouth_open: np.ndarray  # (n,)


class AvatarStream(Protocol):
    async def send_audio(self, samples: np.ndarray, *, last: bool = False) -> None: ...
    def batches(self) -> AsyncIterator[FrameBatch]: ...
    async def aclose(self) -> None: ...


class Backend(Protocol):
    async def ready(self, models: tuple[str, ...]) -> bool: ...
    async def analyze_faces(self, image: np.ndarray) -> list[Face]: ...
    def open_avatar(
        self, portrait: np.ndarray, landmarks: np.ndarray, fps: float
    ) -> AvatarStream: ...
    async def aclose(self) -> None: ...


def _map_error(exc: InferenceServerException | Exception, what: str) -> A2VError:
    text = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    text = text or repr(exc)
    match = _TAG.search(text)
    if match:
        code, msg = match.groups()
        if code == "INVALID_ARGUMENT":
            return InvalidInput(msg)
        if code == "RESOURCE_EXHAUSTED":
            return ResourceExhausted(msg)
        return A2VError(f"{what} failed in the model: {msg}")
    return Unavailable(f"{what}: the inference server did not answer ({text.strip()[:300]})")


class TritonBackend:
    """tritonclient (gRPC, asyncio) wrapper. One client object per server process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = aioclient.InferenceServerClient(url)

    async def ready(self, models: tuple[str, ...] = (FACE_MODEL, AVATAR_MODEL)) -> bool:
        try:
            if not await self._client.is_server_ready(client_timeout=2.0):
                return False
            for name in models:
                if not await self._client.is_model_ready(name, client_timeout=2.0):
                    return False
            return True
        except (InferenceServerException, grpc.RpcError):
            return False

    async def analyze_faces(self, image: np.ndarray) -> list[Face]:
        tensor = grpcclient.InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(np.ascontiguousarray(image, dtype=np.uint8))
        try:
            result = await self._client.infer(FACE_MODEL, [tensor], client_timeout=30.0)
        except InferenceServerException as exc:
            raise _map_error(exc, "face analysis") from exc
        except grpc.RpcError as exc:
            raise Unavailable(
                f"face analysis: inference server unreachable ({exc.code().name})"
            ) from exc
        boxes = result.as_numpy("BOXES")
        scores = result.as_numpy("SCORES")
        marks = result.as_numpy("LANDMARKS")
        return [
            Face(tuple(float(v) for v in boxes[i]), float(scores[i]), marks[i])  # type: ignore[arg-type]
            for i in range(len(boxes))
        ]

    def open_avatar(self, portrait: np.ndarray, landmarks: np.ndarray, fps: float) -> AvatarStream:
        return TritonAvatarStream(self._client, portrait, landmarks, fps)

    async def aclose(self) -> None:
        await self._client.close()


class TritonAvatarStream:
    """One Triton sequence on the decoupled ``talking_avatar`` model.

    ``send_audio`` queues a request; ``batches`` yields frames as Triton streams them back, and
    ends after the final response of the last request. Each request gets exactly one final
    (possibly empty) response, which is how the end is detected.
    """

    def __init__(self, client, portrait: np.ndarray, landmarks: np.ndarray, fps: float) -> None:
        self._client = client
        self._sequence_id = secrets.randbits(62) + 1
        self._requests: asyncio.Queue = asyncio.Queue(maxsize=8)
        self._sent = 0
        self._first = {
            "PORTRAIT": np.ascontiguousarray(portrait, dtype=np.uint8),
            "LANDMARKS": np.asarray(landmarks, dtype=np.float32).reshape(68, 2),
            "FPS": np.array([fps], dtype=np.float32),
        }
        self._last_request_id: str | None = None
        self._closed = False

    async def send_audio(self, samples: np.ndarray, *, last: bool = False) -> None:
        tensors = {"AUDIO": np.ascontiguousarray(samples, dtype=np.float32).ravel()}
        start = self._sent == 0
        if start:
            tensors.update(self._first)
        inputs = []
        for name, value in tensors.items():
            t = grpcclient.InferInput(name, list(value.shape), _DTYPES[value.dtype.name])
            t.set_data_from_numpy(value)
            inputs.append(t)
        request_id = f"{self._sequence_id}-{self._sent}"
        self._sent += 1
        if last:
            self._last_request_id = request_id
        await self._requests.put(
            {
                "model_name": AVATAR_MODEL,
                "inputs": inputs,
                "request_id": request_id,
                "sequence_id": self._sequence_id,
                "sequence_start": start,
                "sequence_end": last,
                "enable_empty_final_response": True,
            }
        )
        if last:
            await self._requests.put(None)

    async def _request_iter(self):
        while True:
            item = await self._requests.get()
            if item is None:
                return
            yield item

    async def batches(self) -> AsyncIterator[FrameBatch]:
        stream = self._client.stream_infer(self._request_iter())
        try:
            async for result, error in stream:
                if error is not None:
                    raise _map_error(error, "rendering")
                response = result.get_response()
                if result.as_numpy("FRAMES") is not None:
                    yield FrameBatch(
                        int(result.as_numpy("FIRST_FRAME")[0]),
                        result.as_numpy("FRAMES"),
                        result.as_numpy("MOUTH_OPEN"),
                    )
                final = response.parameters.get("triton_final_response")
                if final is not None and final.bool_param and response.id == self._last_request_id:
                    return
        except InferenceServerException as exc:
            raise _map_error(exc, "rendering") from exc
        except grpc.RpcError as exc:  # the connection to Triton broke mid-stream
            raise Unavailable(f"rendering: lost the inference server ({exc.code().name})") from exc
        finally:
            await self.aclose()
            stream.cancel()  # no-op when finished; frees the Triton sequence when we stop early

    async def aclose(self) -> None:
        """Stop the request stream; the gRPC stream is cancelled with it (frees the sequence)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._requests.put_nowait(None)
        except asyncio.QueueFull:
            # A full queue means nobody is consuming: drop what is pending, then end it.
            while not self._requests.empty():
                self._requests.get_nowait()
            self._requests.put_nowait(None)


_DTYPES = {"float32": "FP32", "uint8": "UINT8"}
