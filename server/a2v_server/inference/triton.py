"""The Triton side: face analysis and streamed avatar rendering, behind a small interface.

``TritonBackend`` is the only module that imports tritonclient. The pipeline talks to the
``Backend`` protocol, so unit tests can stand a fake in for Triton.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from a2v_server.errors import (
    A2VError,
    DeadlineExceeded,
    InvalidInput,
    ResourceExhausted,
    Unavailable,
)
from a2v_server.observability.metrics import TRITON_SECONDS
from a2v_server.observability.tracing import trace_headers

log = logging.getLogger(__name__)

#: monotonic time by which the current call must be done: the caller's gRPC deadline, set by
#: the servicer and passed on to every Triton call made for it (a context variable, so the
#: pipeline's tasks see it without threading it through every signature)
call_deadline: ContextVar[float | None] = ContextVar("a2v_call_deadline", default=None)


def remaining_seconds(cap: float | None = None) -> float | None:
    """Seconds left until the call's deadline (at most ``cap``), or ``cap`` without one."""
    deadline = call_deadline.get()
    if deadline is None:
        return cap
    left = max(0.001, deadline - time.monotonic())
    return left if cap is None else min(cap, left)


FACE_MODEL = "face_landmarks"
AVATAR_MODEL = "talking_avatar"
LIPSYNC_MODEL = "lipsync"
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
    #: optional side outputs (None when the model does not produce them)
    viseme: np.ndarray | None = None  # (n,) a2v.v1.Viseme numbers
    head_pose: np.ndarray | None = None  # (n, 3) yaw, pitch, roll degrees
    blink: np.ndarray | None = None  # (n,)
    audio_kind: int = 0  # a2v.v1.AudioKind number
    face_found: np.ndarray | None = None  # (n,) lipsync: 0 = frame passed through
    #: when set, ``frames`` are only this part (x0, y0, x1, y1) of the picture
    region: tuple[int, int, int, int] | None = None


class ModelStream(Protocol):
    """One streaming generation on a decoupled, stateful model."""

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
    ) -> None: ...
    def batches(self) -> AsyncIterator[FrameBatch]: ...
    async def aclose(self) -> None: ...


class Backend(Protocol):
    async def ready(self, models: tuple[str, ...]) -> bool: ...
    async def lookahead_seconds(self, model: str) -> float: ...
    async def analyze_faces(self, image: np.ndarray) -> list[Face]: ...
    async def open_avatar(
        self, portrait: np.ndarray, landmarks: np.ndarray, fps: float, options: dict | None = None
    ) -> ModelStream: ...
    async def open_lipsync(
        self, fps: float, face_index: int, face_box: tuple[float, ...] | None
    ) -> ModelStream: ...
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
    if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
        return DeadlineExceeded(f"{what}: the call's deadline passed; allow more time")
    return Unavailable(f"{what}: the inference server did not answer ({text.strip()[:300]})")


class TritonBackend:
    """tritonclient (gRPC, asyncio) wrapper. One client object per server process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = aioclient.InferenceServerClient(url)
        self._inputs: dict[str, set[str]] = {}
        self._lookahead: dict[str, float] = {}

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
            sent = time.monotonic()
            result = await self._client.infer(
                FACE_MODEL,
                [tensor],
                client_timeout=remaining_seconds(30.0),
                headers=trace_headers(),
            )
            TRITON_SECONDS.labels(FACE_MODEL, "infer").observe(time.monotonic() - sent)
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

    async def open_avatar(
        self, portrait: np.ndarray, landmarks: np.ndarray, fps: float, options: dict | None = None
    ) -> ModelStream:
        """Start a talking-avatar sequence. ``options`` are optional first-request inputs
        (SEED, EXPRESSION_SCALE, ...); those the deployed model does not declare are left out
        with a warning, so a server can run against an older model repository."""
        accepted = await self._input_names(AVATAR_MODEL)
        for name in list(options or {}):
            if name not in accepted:
                log.warning("model %s has no input %s: option ignored", AVATAR_MODEL, name)
                options.pop(name)  # type: ignore[union-attr]
        first = {
            "PORTRAIT": np.ascontiguousarray(portrait, dtype=np.uint8),
            "LANDMARKS": np.asarray(landmarks, dtype=np.float32).reshape(68, 2),
            "FPS": np.array([fps], dtype=np.float32),
        }
        first.update(options or {})
        return TritonSequenceStream(self._client, AVATAR_MODEL, first)

    async def open_lipsync(
        self, fps: float, face_index: int, face_box: tuple[float, ...] | None
    ) -> ModelStream:
        first = {
            "FPS": np.array([fps], dtype=np.float32),
            "FACE_INDEX": np.array([face_index], dtype=np.int32),
        }
        if face_box is not None:
            first["FACE_BOX"] = np.array(face_box, dtype=np.float32)
        return TritonSequenceStream(self._client, LIPSYNC_MODEL, first)

    async def lookahead_seconds(self, model: str) -> float:
        """The lookahead ``model`` declares in its config (0 when unknown or not ready)."""
        if model not in self._lookahead:
            try:
                config = (await self._client.get_model_config(model, as_json=True))["config"]
                value = config.get("parameters", {}).get("lookahead_seconds", {})
                self._lookahead[model] = float(value.get("string_value", 0.0))
            except (InferenceServerException, grpc.RpcError, ValueError):
                return 0.0
        return self._lookahead[model]

    async def _input_names(self, model: str) -> set[str]:
        if model not in self._inputs:
            try:
                meta = await self._client.get_model_metadata(model, as_json=True)
            except InferenceServerException as exc:
                raise _map_error(exc, "model metadata") from exc
            self._inputs[model] = {i["name"] for i in meta["inputs"]}
        return self._inputs[model]

    async def aclose(self) -> None:
        await self._client.close()


class TritonSequenceStream:
    """One Triton sequence on a decoupled, stateful model (talking_avatar, lipsync).

    ``send_audio`` queues a request (the first carries ``first``, the per-sequence inputs);
    ``batches`` yields frames as Triton streams them back and ends with the stream.

    The Triton stream is read by a task of its own, never by the caller's task: grpc.aio
    cancels a call whose reader is cancelled, and Triton 2.51 was seen to crash (SIGSEGV)
    under a storm of cancelled decoupled sequence streams. So a generation that stops early
    does not cancel the stream: ``aclose`` ends the sequence with an END request and the reader
    drains what is left (at most the frames window) and finishes by itself.
    """

    #: frames the model may have in flight (asked for, not yet taken by the caller): ~1 s of
    #: video. Triton queues a streaming request's responses without limit, so without this
    #: window a model that renders faster than the server encodes fills Triton's memory.
    WINDOW_SECONDS = 1.0
    #: a reader still draining this long after aclose is cancelled (last resort)
    DRAIN_SECONDS = 20.0

    def __init__(self, client, model: str, first: dict[str, np.ndarray]) -> None:
        self._client = client
        self._model = model
        self._fps = float(first["FPS"].ravel()[0])
        self._samples = 0
        self._received = 0
        self._progress = asyncio.Condition()
        self._sequence_id = secrets.randbits(62) + 1
        self._requests: asyncio.Queue = asyncio.Queue(maxsize=8)
        self._responses: asyncio.Queue = asyncio.Queue()  # bounded by the window
        self._reader: asyncio.Task | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._sent = 0
        self._first = first
        self._ended = False  # the END request is queued
        self._closed = False
        #: request id -> when it went to Triton, for the per-request latency metric
        self._sent_at: dict[str, float] = {}

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
    ) -> None:
        window = max(2, round(self.WINDOW_SECONDS * self._fps))
        async with self._progress:
            await self._progress.wait_for(
                lambda: self._closed or self._requested() - self._received <= window
            )
        if self._closed:
            return
        self._samples += len(samples)
        tensors = {"AUDIO": np.ascontiguousarray(samples, dtype=np.float32).ravel()}
        if frames is not None and len(frames):
            tensors["FRAMES_IN"] = np.ascontiguousarray(frames, dtype=np.uint8)
            tensors["SOURCE_INDEX"] = np.asarray(source_index, dtype=np.int64)
        await self._requests.put(self._request(tensors, last=last))
        if last:
            await self._requests.put(None)

    def _request(self, tensors: dict[str, np.ndarray], *, last: bool) -> dict:
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
        self._ended = self._ended or last
        return {
            "model_name": self._model,
            "inputs": inputs,
            "request_id": request_id,
            "sequence_id": self._sequence_id,
            "sequence_start": start,
            "sequence_end": last,
        }

    def _requested(self) -> int:
        return int(self._samples * self._fps / 16000)

    async def _request_iter(self):
        while True:
            item = await self._requests.get()
            if item is None:
                return
            self._sent_at[item["request_id"]] = time.monotonic()
            yield item

    async def _read(self) -> None:
        """The reader task: Triton's responses -> self._responses, then a final None."""
        # The caller's deadline becomes the stream's (Triton cancels the sequence's requests
        # when it passes); the current span (inference.render) parents Triton's spans.
        try:
            stream = self._client.stream_infer(
                self._request_iter(), stream_timeout=remaining_seconds(), headers=trace_headers()
            )
            async for result, error in stream:
                if error is not None:
                    self._responses.put_nowait(_map_error(error, "rendering"))
                    continue
                sent = self._forget_sent(result.get_response().id)
                if result.as_numpy("FRAMES") is None or self._closed:
                    continue  # after aclose nobody reads: drain and drop
                if sent is not None:
                    TRITON_SECONDS.labels(self._model, "stream_infer").observe(
                        time.monotonic() - sent
                    )
                self._responses.put_nowait(_batch(result))
        except InferenceServerException as exc:
            self._responses.put_nowait(_map_error(exc, "rendering"))
        except grpc.RpcError as exc:  # the connection to Triton broke mid-stream
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self._responses.put_nowait(
                    DeadlineExceeded("rendering: the call's deadline passed")
                )
            else:
                self._responses.put_nowait(
                    Unavailable(f"rendering: lost the inference server ({exc.code().name})")
                )
        except Exception as exc:  # a bug: surface it to the generation, never hang it
            self._responses.put_nowait(exc)
        finally:
            self._responses.put_nowait(None)
            if self._drain_timer is not None:
                self._drain_timer.cancel()

    def _forget_sent(self, request_id: str) -> float | None:
        """When request ``request_id`` was sent (for the round-trip metric: sent -> its first
        frames back), or None after its first response. Requests before it are forgotten too:
        the model takes a sequence's requests in order, and one that made no frames gets no
        response at all, so without this the map would grow with the stream's length."""
        sent = self._sent_at.pop(request_id, None)
        number = _request_number(request_id)
        while self._sent_at:
            oldest = next(iter(self._sent_at))
            if _request_number(oldest) >= number:
                break
            del self._sent_at[oldest]
        return sent

    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Frame batches in frame order.

        Triton does not keep a decoupled model's responses in order across the requests of a
        stream (triton-inference-server/server#4918; seen here: the first batch of one request
        overtook the last batch of the one before, "got 88, expected 87"). So a batch that
        arrives early waits here for the ones before it; a gap left at the end of the stream
        is an error.
        """
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"a2v-triton-{self._model}")
        early: dict[int, FrameBatch] = {}  # first_index -> batch that overtook others
        while True:
            item = await self._responses.get()
            if item is None:
                if early:
                    raise A2VError(
                        f"the model skipped frames (expected frame {self._received}, got "
                        f"frames from {min(early)} on)"
                    )
                return
            if isinstance(item, BaseException):
                raise item
            if item.first_index != self._received:
                if item.first_index < self._received or item.first_index in early:
                    raise A2VError(f"the model sent frame {item.first_index} twice")
                early[item.first_index] = item
                continue
            while item is not None:
                async with self._progress:
                    self._received += len(item.frames)
                    self._progress.notify_all()
                yield item
                item = early.pop(self._received, None)

    async def aclose(self) -> None:
        """Finish the sequence without cancelling the Triton stream (see the class doc)."""
        if self._closed:
            return
        self._closed = True
        # Everything that ends the sequence happens before the first await: a second cancel of
        # the closing task must not leave the sequence holding a model instance (Triton would
        # keep it until max_sequence_idle, 35 s, and new calls would queue behind it).
        while not self._requests.empty():  # drop what is pending...
            self._requests.get_nowait()
        if self._sent and not self._ended:  # ...and end a started sequence
            self._requests.put_nowait(self._request({"AUDIO": np.zeros(0, np.float32)}, last=True))
        self._requests.put_nowait(None)
        self._first = {}  # the portrait and other per-sequence inputs: not needed any more
        while not self._responses.empty():  # frames nobody will take
            self._responses.get_nowait()
        if self._reader is not None and not self._reader.done():
            self._drain_timer = asyncio.get_running_loop().call_later(
                self.DRAIN_SECONDS, self._reader.cancel
            )
        async with self._progress:
            self._progress.notify_all()  # wake a send_audio waiting for the window


def _request_number(request_id: str) -> int:
    """n of a request id "<sequence id>-<n>" (see TritonSequenceStream._request); -1 if none."""
    try:
        return int(request_id.rpartition("-")[2])
    except ValueError:
        return -1


def _batch(result) -> FrameBatch:
    def optional(name: str) -> np.ndarray | None:
        return result.as_numpy(name)  # None when the model does not send it

    kind = optional("AUDIO_KIND")
    region = optional("REGION")
    return FrameBatch(
        int(result.as_numpy("FIRST_FRAME")[0]),
        result.as_numpy("FRAMES"),
        result.as_numpy("MOUTH_OPEN"),
        viseme=optional("VISEME"),
        head_pose=optional("HEAD_POSE"),
        blink=optional("BLINK"),
        audio_kind=int(kind.ravel()[0]) if kind is not None else 0,
        face_found=optional("FACE_FOUND"),
        region=tuple(int(v) for v in region.ravel()) if region is not None else None,
    )


_DTYPES = {
    "bool": "BOOL",
    "float32": "FP32",
    "uint8": "UINT8",
    "int32": "INT32",
    "int64": "INT64",
    "uint64": "UINT64",
    "object": "BYTES",
}
