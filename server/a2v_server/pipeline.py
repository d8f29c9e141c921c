"""One generation, from input events to output events. No gRPC here.

Stages run concurrently and hand work on through bounded queues, so a slow consumer pushes back
on everything upstream (and, through HTTP/2 flow control, on the client):

  inputs --> audio decode (worker thread) --> Triton sequence (talking_avatar) --> encoder task
                     \\---------------------- output audio --------------------------/
                                                                      --> events (chunks, progress)

CPU-heavy work (image/audio decode, framing, H.264/AAC encode) runs in worker threads; the
event loop only moves data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from opentelemetry import trace

from . import framing
from .catalog import ModelSpec
from .errors import A2VError, DeadlineExceeded, FailedPrecondition, InvalidInput, ResourceExhausted
from .inference import AvatarStream, Backend, FrameBatch
from .media.audio import AudioBlock, EncodedAudioDecoder, PcmDecoder
from .media.encoder import FragmentedMp4Encoder
from .media.image import decode_image
from .settings import Settings
from .spec import (
    Accepted,
    Chunk,
    EncodedAudioPiece,
    EndOfInput,
    GenerateSpec,
    ImagePiece,
    InputEvent,
    OutputEvent,
    PcmAudioPiece,
    Progress,
    Summary,
    Timings,
    VideoPiece,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")

MODEL_RATE = 16000
#: audio is sent to the model in pieces of at least this many samples (100 ms): fewer requests,
#: still well inside the live-latency budget
MODEL_CHUNK = 1600
#: the portrait is analysed at this size at most (landmarks are scaled back)
ANALYSIS_SIDE = 1280
_DONE = object()


class Generation:
    """Runs one Generate call. ``run()`` is an async generator of output events."""

    def __init__(self, spec: GenerateSpec, model: ModelSpec, backend: Backend, settings: Settings):
        self.spec = spec
        self.model = model
        self.backend = backend
        self.settings = settings
        self._events: asyncio.Queue = asyncio.Queue(maxsize=32)
        self._encode_queue: asyncio.Queue = asyncio.Queue(maxsize=16)
        self._audio_blocks: asyncio.Queue = asyncio.Queue(maxsize=16)
        # PyAV encoder objects are used from one thread only
        self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="a2v-encode")
        self._cancel = threading.Event()
        self._t0 = time.monotonic()
        self._first_chunk_at: float | None = None
        self._decode_s = self._infer_s = self._encode_s = 0.0
        self._frames_total = 0
        self._frames_done = 0
        self._audio_seconds = 0.0
        self._bytes = 0
        self._chunks = 0
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------------------
    async def run(self, inputs: AsyncIterator[InputEvent]) -> AsyncIterator[OutputEvent]:
        self._loop = asyncio.get_running_loop()
        inputs = _with_idle_timeout(inputs, self.settings.idle_timeout_seconds)
        try:
            image_bytes, next_event = await self._read_visual_input(inputs)
            fitted, landmarks, accepted = await self._prepare_portrait(image_bytes)
            yield accepted
            avatar = self.backend.open_avatar(fitted, landmarks, self.spec.fps)
            producer = asyncio.create_task(self._produce(inputs, next_event, avatar, accepted))
            try:
                while (event := await self._events.get()) is not _DONE:
                    yield event
                if self._error is not None:
                    raise self._error
                yield self._summary()
            finally:
                self._cancel.set()
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
                await avatar.aclose()
        finally:
            self._cancel.set()
            self._encode_pool.shutdown(wait=False, cancel_futures=True)

    # --- visual input ---------------------------------------------------------------------------
    async def _read_visual_input(
        self, inputs: AsyncIterator[InputEvent]
    ) -> tuple[bytes, InputEvent]:
        pieces: list[bytes] = []
        size = 0
        async for event in inputs:
            if isinstance(event, ImagePiece):
                size += len(event.data)
                if size > self.settings.max_image_bytes:
                    raise ResourceExhausted(
                        f"the image is larger than {self.settings.max_image_bytes} bytes: "
                        "send a smaller file (a portrait needs no more than 4096 px per side)",
                        field="image",
                    )
                pieces.append(event.data)
                continue
            if isinstance(event, VideoPiece):
                raise InvalidInput(
                    f"model {self.model.name} takes a still image, not a video: send the "
                    "portrait as an image message",
                    field="video",
                )
            if not pieces:
                raise InvalidInput(
                    "the portrait is missing: send an image message (PNG, JPEG or WebP) after "
                    "the config and before the audio",
                    field="image",
                )
            return b"".join(pieces), event
        raise InvalidInput(
            "the input ended before any audio: send audio messages and then an end message",
            field="audio",
        )

    async def _prepare_portrait(self, data: bytes) -> tuple[np.ndarray, np.ndarray, Accepted]:
        with tracer.start_as_current_span("decode.image"):
            t = time.monotonic()
            image = await asyncio.to_thread(
                decode_image, data, max_pixels=self.settings.max_image_pixels
            )
            analysis, factor = await asyncio.to_thread(_downscale, image, ANALYSIS_SIDE)
            self._decode_s += time.monotonic() - t
        with tracer.start_as_current_span("inference.face_analysis") as span:
            t = time.monotonic()
            faces = await self.backend.analyze_faces(analysis)
            self._infer_s += time.monotonic() - t
            span.set_attribute("a2v.faces", len(faces))
        if not faces:
            raise InvalidInput(
                "no face found in the portrait: send a photo in which one face is clearly "
                "visible, roughly frontal and at least 40 pixels wide",
                field="image",
            )
        face = faces[0]  # largest first
        box = tuple(v / factor for v in face.box)
        src_wh = (image.shape[1], image.shape[0])
        out_wh = framing.output_size(
            src_wh, aspect=self.spec.aspect, short_side=self.spec.short_side, size=self.spec.size
        )
        placement = framing.place(src_wh, out_wh, box, self.spec.fit)  # type: ignore[arg-type]
        fitted = await asyncio.to_thread(framing.render_fitted, image, placement, out_wh)
        landmarks = placement.points(face.landmarks / factor)
        out_box = placement.points(np.array(box, dtype=np.float64).reshape(2, 2)).ravel()
        accepted = Accepted(
            request_id=self.spec.request_id,
            model=self.model.name,
            width=out_wh[0],
            height=out_wh[1],
            fps=self.spec.fps,
            seed=self.spec.seed,
            mime_type=mime_type(out_wh, self.spec.fps),
            unused_prompt_words=() if self.model.accepts_prompt else prompt_words(self.spec.prompt),
            face_box=tuple(float(v) for v in out_box),  # type: ignore[arg-type]
        )
        return fitted, landmarks, accepted

    # --- the concurrent stages ------------------------------------------------------------------
    async def _produce(self, inputs, first_event, avatar: AvatarStream, accepted: Accepted) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_audio(inputs, first_event))
                group.create_task(self._feed_model(avatar))
                group.create_task(self._receive_frames(avatar))
                group.create_task(self._encode(accepted))
        except BaseExceptionGroup as group_error:
            self._error = _first_error(group_error)
        except BaseException as exc:
            self._error = exc
        finally:
            await self._events.put(_DONE)

    async def _read_audio(self, inputs: AsyncIterator[InputEvent], event: InputEvent) -> None:
        """Input events -> decoded AudioBlocks on self._audio_blocks (None at the end)."""
        trim = {
            "trim_start": self.spec.trim_start,
            "trim_end": self.spec.trim_end,
            "max_seconds": self.settings.max_audio_seconds,
        }
        received = 0
        with tracer.start_as_current_span("decode.audio"):
            if isinstance(event, EncodedAudioPiece):
                decoder = EncodedAudioDecoder(**trim)
                worker = asyncio.get_running_loop().run_in_executor(
                    None, self._decode_in_thread, decoder
                )
                try:
                    while True:
                        if isinstance(event, EncodedAudioPiece):
                            received += len(event.data)
                            self._check_audio_bytes(received)
                            decoder.write(event.data)
                        elif isinstance(event, EndOfInput):
                            decoder.end()
                            break
                        else:
                            _unexpected(event, "encoded audio")
                        event = await _next_or_missing_end(inputs)
                    await worker
                finally:
                    decoder.cancel()
            elif isinstance(event, PcmAudioPiece):
                rate, channels = event.sample_rate, event.channels
                decoder = PcmDecoder(rate, channels, **trim)
                while True:
                    if isinstance(event, PcmAudioPiece):
                        if event.sample_rate not in (0, rate) or event.channels not in (
                            0,
                            channels,
                        ):
                            raise InvalidInput(
                                "sample_rate and channels must not change within a stream",
                                field="audio.pcm",
                            )
                        received += len(event.data)
                        self._check_audio_bytes(received)
                        blocks = await self._timed_decode(decoder.decode, event.data)
                    elif isinstance(event, EndOfInput):
                        blocks = await self._timed_decode(decoder.flush)
                    else:
                        _unexpected(event, "PCM audio")
                    for block in blocks:
                        await self._audio_blocks.put(block)
                    if isinstance(event, EndOfInput):
                        break
                    event = await _next_or_missing_end(inputs)
                await self._audio_blocks.put(None)
            elif isinstance(event, EndOfInput):
                raise InvalidInput(
                    "the audio is missing: send audio before the end message", field="audio"
                )
            else:
                _unexpected(event, "audio")

        # Nothing may follow the end message.
        async for extra in inputs:
            raise FailedPrecondition(
                f"{_describe(extra)} arrived after the end message: end the input last",
                field="end",
            )

    def _decode_in_thread(self, decoder: EncodedAudioDecoder) -> None:
        loop_put = self._thread_put
        try:
            t = time.monotonic()
            for block in decoder.blocks():
                self._decode_s += time.monotonic() - t
                if not loop_put(block):
                    return
                t = time.monotonic()
        except BaseException as exc:
            loop_put(exc)
            return
        loop_put(None)

    async def _timed_decode(self, fn: Callable, *args) -> list[AudioBlock]:
        t = time.monotonic()
        blocks = await asyncio.to_thread(fn, *args)
        self._decode_s += time.monotonic() - t
        return blocks

    def _check_audio_bytes(self, received: int) -> None:
        if received > self.settings.max_audio_bytes:
            raise ResourceExhausted(
                f"the audio is larger than {self.settings.max_audio_bytes} bytes: trim it or "
                "send a compressed format",
                field="audio",
            )

    async def _feed_model(self, avatar: AvatarStream) -> None:
        """Decoded audio -> encoder (output track) and Triton (model input)."""
        pending: list[np.ndarray] = []
        pending_n = 0
        total = 0
        while True:
            block = await self._audio_blocks.get()
            if isinstance(block, BaseException):
                raise block
            if block is None:
                break
            await self._encode_queue.put(("audio", block.output_pcm))
            pending.append(block.model_pcm)
            pending_n += len(block.model_pcm)
            total += len(block.model_pcm)
            self._audio_seconds = total / MODEL_RATE
            if pending_n >= MODEL_CHUNK:
                await avatar.send_audio(np.concatenate(pending))
                pending, pending_n = [], 0
        if total == 0:
            raise InvalidInput("the audio contains no samples (after trimming)", field="audio")
        self._frames_total = round(total * self.spec.fps / MODEL_RATE)
        rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        await avatar.send_audio(rest, last=True)

    async def _receive_frames(self, avatar: AvatarStream) -> None:
        with tracer.start_as_current_span("inference.render") as span:
            t = time.monotonic()
            received = 0
            async for batch in avatar.batches():
                if batch.first_index != received:
                    raise A2VError(
                        f"the model skipped frames (got {batch.first_index}, expected {received})"
                    )
                received += len(batch.frames)
                await self._encode_queue.put(("video", batch))
            self._infer_s += time.monotonic() - t
            span.set_attribute("a2v.frames", received)
        await self._encode_queue.put(("close", None))

    async def _encode(self, accepted: Accepted) -> None:
        loop = asyncio.get_running_loop()
        encoder: FragmentedMp4Encoder | None = None
        last_progress = 0
        with tracer.start_as_current_span("encode") as span:
            try:
                while True:
                    kind, payload = await self._encode_queue.get()
                    if encoder is None:
                        channels = payload.shape[0] if kind == "audio" else 1
                        encoder = FragmentedMp4Encoder(
                            accepted.width, accepted.height, accepted.fps, channels
                        )
                    if kind == "close":
                        break
                    if kind == "audio":
                        segments = await self._in_encoder(loop, encoder.add_audio, payload)
                    else:
                        segments = await self._in_encoder(loop, _add_frames, encoder, payload)
                        self._frames_done += len(payload.frames)
                    await self._emit(segments)
                    if self._frames_done - last_progress >= self.spec.fps:
                        last_progress = self._frames_done
                        await self._events.put(self._progress())
                if self._frames_done != self._frames_total:
                    raise A2VError(
                        f"the model returned {self._frames_done} frames, expected "
                        f"{self._frames_total}"
                    )
                await self._emit(await self._in_encoder(loop, encoder.close))
                await self._events.put(self._progress())
                span.set_attribute("a2v.bytes", self._bytes)
            finally:
                if encoder is not None:
                    self._encode_pool.submit(encoder.close)

    async def _in_encoder(self, loop, fn, *args):
        t = time.monotonic()
        result = await loop.run_in_executor(self._encode_pool, fn, *args)
        self._encode_s += time.monotonic() - t
        return result

    async def _emit(self, segments) -> None:
        for segment in segments:
            if self._first_chunk_at is None:
                self._first_chunk_at = time.monotonic()
            await self._events.put(Chunk(self._chunks, segment))
            self._chunks += 1
            self._bytes += len(segment.data)

    # --- helpers --------------------------------------------------------------------------------
    def _thread_put(self, item) -> bool:
        """Put from a worker thread, giving up when the generation was cancelled."""
        loop = self._loop
        while not self._cancel.is_set():
            future = asyncio.run_coroutine_threadsafe(self._audio_blocks.put(item), loop)
            try:
                future.result(timeout=0.5)
                return True
            except TimeoutError:
                future.cancel()
        return False

    def _progress(self) -> Progress:
        return Progress(self._frames_done, self._frames_total, self._audio_seconds)

    def _summary(self) -> Summary:
        now = time.monotonic()
        return Summary(
            frames=self._frames_done,
            duration_seconds=self._frames_done / self.spec.fps,
            bytes=self._bytes,
            chunks=self._chunks,
            timings=Timings(
                total=now - self._t0,
                first_chunk=(self._first_chunk_at or now) - self._t0,
                decode=self._decode_s,
                inference=self._infer_s,
                encode=self._encode_s,
            ),
        )


def _add_frames(encoder: FragmentedMp4Encoder, batch: FrameBatch) -> list:
    segments = []
    for frame in batch.frames:
        segments.extend(encoder.add_video(frame))
    return segments


def _downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    factor = min(1.0, side / max(image.shape[:2]))
    if factor >= 1.0:
        return image, 1.0
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, factor


async def _with_idle_timeout(inputs: AsyncIterator[InputEvent], seconds: float):
    iterator = inputs.__aiter__()
    while True:
        try:
            event = await asyncio.wait_for(anext(iterator), seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"no message from the client for {seconds:g} s: send the input without pauses "
                "(live sources: keep sending audio, even silence)"
            ) from None
        yield event


async def _next_or_missing_end(inputs: AsyncIterator[InputEvent]) -> InputEvent:
    try:
        return await anext(inputs)
    except StopAsyncIteration:
        raise InvalidInput(
            "the input stream closed without an end message: send EndOfInput after the last "
            "audio chunk (a dropped connection is not taken as the end of the audio)",
            field="end",
        ) from None


def _unexpected(event: InputEvent, expected: str) -> None:
    raise FailedPrecondition(
        f"{_describe(event)} arrived while reading {expected}: send config, image, audio, end "
        "in that order, and do not mix encoded and PCM audio",
        field=_describe(event),
    )


def _describe(event: InputEvent) -> str:
    return {
        ImagePiece: "image",
        VideoPiece: "video",
        EncodedAudioPiece: "audio.encoded",
        PcmAudioPiece: "audio.pcm",
        EndOfInput: "end",
    }.get(type(event), type(event).__name__)


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The root cause: prefer a domain error over the cancellations it triggered."""
    flat: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            flat.append(e)

    walk(group)
    for e in flat:
        if isinstance(e, A2VError):
            return e
    return flat[0]


def prompt_words(prompt: str) -> tuple[str, ...]:
    """Distinct words of the prompt, in order (what a model that ignores it lists back)."""
    seen: dict[str, None] = {}
    for word in re.findall(r"[\w'-]+", prompt.lower()):
        seen.setdefault(word, None)
    return tuple(seen)


# H.264 levels: (name, max macroblocks per frame, max macroblocks per second)
_LEVELS = [
    ("0d", 396, 11880),
    ("15", 792, 19800),
    ("16", 1620, 20250),
    ("1e", 1620, 40500),
    ("1f", 3600, 108000),
    ("20", 5120, 216000),
    ("28", 8192, 245760),
    ("2a", 8704, 522240),
    ("32", 22080, 589824),
    ("33", 36864, 983040),
    ("34", 36864, 2073600),
]


def mime_type(size: tuple[int, int], fps: float) -> str:
    """RFC 6381 type of the stream (H.264 High profile at the level the size needs, AAC-LC)."""
    mbs = ((size[0] + 15) // 16) * ((size[1] + 15) // 16)
    level = next((name for name, fs, mbps in _LEVELS if mbs <= fs and mbs * fps <= mbps), "34")
    return f'video/mp4; codecs="avc1.6400{level},mp4a.40.2"'
