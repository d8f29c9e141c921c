"""One Triton sequence on a decoupled, stateful model: requests out, frame batches back."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator
from typing import Any

import grpc
import numpy as np
from tritonclient.utils import InferenceServerException

from a2v_server.catalog import MODEL_SAMPLE_RATE
from a2v_server.errors import DeadlineExceeded, Unavailable
from a2v_server.inference.backend import FrameBatch, remaining_seconds
from a2v_server.inference.errors import map_triton_error
from a2v_server.inference.ordering import FrameOrder, SendTimes
from a2v_server.inference.wire import infer_request
from a2v_server.observability.metrics import TRITON_SECONDS
from a2v_server.observability.tracing import trace_headers


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

    def __init__(
        self,
        client: Any,
        model: str,
        first: dict[str, np.ndarray],
        *,
        takes_frames: bool = False,
        start_frame: int = 0,
        takes_i420: bool = False,
    ) -> None:
        self.takes_i420 = takes_i420
        self._client = client
        self._model = model
        self._fps = float(first["FPS"].ravel()[0])
        self._samples = 0
        #: lipsync: the frames sent so far (None: a model that makes its frames from audio)
        self._frames_in: int | None = start_frame if takes_frames else None
        #: frames taken by the caller; a sequence reopened at frame N (failover) owes none before
        self._received = start_frame
        self._start_frame = start_frame
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
        self._sent_at = SendTimes()

    async def send_audio(
        self,
        samples: np.ndarray,
        *,
        last: bool = False,
        frames: np.ndarray | None = None,
        source_index: np.ndarray | None = None,
        origin: tuple[int, int] | None = None,
    ) -> None:
        window = max(2, round(self.WINDOW_SECONDS * self._fps))
        if len(samples) or last:  # frames alone ask for no new frames: they never wait
            async with self._progress:
                await self._progress.wait_for(
                    lambda: self._closed or self._requested() - self._received <= window
                )
        if self._closed:
            return
        self._samples += len(samples)
        tensors = {"AUDIO": np.ascontiguousarray(samples, dtype=np.float32).ravel()}
        if frames is not None and len(frames):
            if self._frames_in is not None:
                self._frames_in += len(frames)
            # packed I420 (n, h * 3 / 2, w) or RGB (n, h, w, 3)
            name = "FRAMES_I420" if np.ndim(frames) == 3 else "FRAMES_IN"
            tensors[name] = np.ascontiguousarray(frames, dtype=np.uint8)
            tensors["SOURCE_INDEX"] = np.asarray(source_index, dtype=np.int64)
            if origin is not None:
                tensors["ORIGIN"] = np.asarray(origin, dtype=np.int32)
        await self._requests.put(self._request(tensors, last=last))
        if last:
            await self._requests.put(None)

    def _request(self, tensors: dict[str, np.ndarray], *, last: bool) -> dict:
        start = self._sent == 0
        if start:
            tensors.update(self._first)
        request_id = f"{self._sequence_id}-{self._sent}"
        self._sent += 1
        self._ended = self._ended or last
        data = infer_request(
            self._model,
            tensors,
            request_id=request_id,
            sequence_id=self._sequence_id,
            start=start,
            end=last,
        )
        return {"request_id": request_id, "data": data}

    def _requested(self) -> int:
        """Frames the model can make from what it was sent: one per frame of audio, and for
        lipsync only those whose video frame was sent too (remap sends its frames after all
        of the audio: counting its audio alone, the audio would wait for frames that cannot
        come before it)."""
        by_audio = int(self._samples * self._fps / MODEL_SAMPLE_RATE)
        return by_audio if self._frames_in is None else min(by_audio, self._frames_in)

    def owed(self) -> bool:
        """Whether the model owes frames for what it was sent (a stream that is silent while
        it owes them has stalled)."""
        return self._requested() > self._received or (self._ended and not self._closed)

    async def _request_iter(self):
        while True:
            item = await self._requests.get()
            if item is None:
                return
            self._sent_at.sent(item["request_id"], time.monotonic())
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
                    self._responses.put_nowait(map_triton_error(error, "rendering"))
                    continue
                sent = self._sent_at.answered(result.get_response().id)
                if _frames(result) is None or self._closed:
                    continue  # after aclose nobody reads: drain and drop
                if sent is not None:
                    TRITON_SECONDS.labels(self._model, "stream_infer").observe(
                        time.monotonic() - sent
                    )
                self._responses.put_nowait(_batch(result))
        except InferenceServerException as exc:
            self._responses.put_nowait(map_triton_error(exc, "rendering"))
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

    async def batches(self) -> AsyncGenerator[FrameBatch, None]:
        """Frame batches in frame order (see ``FrameOrder``), until the stream ends."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"a2v-triton-{self._model}")
        order = FrameOrder(self._start_frame)
        while True:
            item = await self._responses.get()
            if item is None:
                order.finish()
                return
            if isinstance(item, BaseException):
                raise item
            for batch in order.push(item):
                async with self._progress:
                    self._received += len(batch.frames)
                    self._progress.notify_all()
                yield batch

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


def _batch(result) -> FrameBatch:
    def optional(name: str) -> np.ndarray | None:
        return result.as_numpy(name)  # None when the model does not send it

    kind = optional("AUDIO_KIND")
    region = optional("REGION")
    frames = _frames(result)
    assert frames is not None  # (the reader skips responses without frames)
    return FrameBatch(
        int(result.as_numpy("FIRST_FRAME")[0]),
        frames,
        result.as_numpy("MOUTH_OPEN"),
        viseme=optional("VISEME"),
        head_pose=optional("HEAD_POSE"),
        blink=optional("BLINK"),
        audio_kind=int(kind.ravel()[0]) if kind is not None else 0,
        face_found=optional("FACE_FOUND"),
        mouth_source=optional("MOUTH_SOURCE"),
        region=_region(region),
        face_boxes=optional("FACE"),
        face_score=optional("FACE_SCORE"),
    )


def _frames(result) -> np.ndarray | None:
    """The response's frames: RGB (FRAMES) or, for lipsync frames sent as I420, packed I420
    (FRAMES_I420)."""
    frames = result.as_numpy("FRAMES")
    return frames if frames is not None else result.as_numpy("FRAMES_I420")


def _region(values: np.ndarray | None) -> tuple[int, int, int, int] | None:
    if values is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in values.ravel())
    return x0, y0, x1, y1
