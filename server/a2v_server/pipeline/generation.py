"""One generation, from input events to output events. No gRPC here.

Stages run concurrently and hand work on through bounded queues, so a slow consumer pushes back
on everything upstream (and, through HTTP/2 flow control, on the client):

  inputs --> audio decode (audio_input) --> Triton sequence (talking_avatar | lipsync) --+
                     \\---------------------- output audio -----------> encoder task <--+
                                                                      --> events (chunks, ...)

CPU-heavy work (decoding, framing, H.264/AAC encode) runs in worker threads; the event loop
only moves data. The visual input is prepared first (visual.py): the Accepted message goes out
as soon as the face is found and the frame size is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from opentelemetry import trace

from a2v_server.catalog import InputKind, ModelSpec
from a2v_server.domain import (
    Accepted,
    Chunk,
    GenerateSpec,
    InputEvent,
    OutputEvent,
    Progress,
    Summary,
    Timeline,
    TimelineFrame,
    Timings,
)
from a2v_server.errors import (
    A2VError,
    DeadlineExceeded,
    InvalidInput,
    ResourceExhausted,
    Unavailable,
    without_traceback,
)
from a2v_server.inference.triton import Backend, FrameBatch, ModelStream
from a2v_server.media.audio import OUTPUT_RATE
from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.video import source_index
from a2v_server.pipeline.audio_input import audio_blocks
from a2v_server.pipeline.look import FrameStyler, parse_prompt
from a2v_server.pipeline.visual import (
    StageClock,
    Visual,
    prepare_portrait,
    prepare_video,
    read_visual,
)
from a2v_server.settings import Settings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")

MODEL_RATE = 16000
#: audio is sent to the model in pieces of at least this many samples (100 ms): fewer requests,
#: still well inside the live-latency budget
MODEL_CHUNK = 1600
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
        # PyAV encoder objects are used from one thread only
        self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="a2v-encode")
        self._t0 = time.monotonic()
        self._clock = StageClock()
        self._first_chunk_at: float | None = None
        self._fps = spec.fps
        self._steering = parse_prompt(spec.prompt)
        self._frames_total = 0
        self._frames_done = 0
        self._audio_seconds = 0.0
        self._audio_kind = 0
        self._audio_started: float | None = None
        self._bytes = 0
        self._chunks = 0
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------------------
    async def run(self, inputs: AsyncIterator[InputEvent]) -> AsyncIterator[OutputEvent]:
        inputs = _paced(inputs, self.settings)
        visual: Visual | None = None
        try:
            source, next_event = await read_visual(inputs, self.model, self.settings)
            if isinstance(source, bytes):
                visual = await prepare_portrait(
                    source, self.spec, self.backend, self.settings, self._clock
                )
            else:
                visual = await prepare_video(
                    source, self.spec, self.backend, self.settings, self._clock
                )
            self._fps = visual.fps
            accepted = self._accepted(visual)
            yield accepted
            stream = await self._open_model(visual)
            # Open the sequence now, without audio: the model builds its per-portrait state
            # (warp fields, recognisers: 0.1-0.3 s) while the audio is still being decoded.
            await stream.send_audio(np.zeros(0, np.float32))
            producer = asyncio.create_task(self._produce(inputs, next_event, stream, visual))
            try:
                while (event := await self._events.get()) is not _DONE:
                    yield event
                if self._error is not None:
                    error, self._error = self._error, None  # no cycle via its traceback
                    raise error
                yield self._summary()
            finally:
                producer.cancel()
                try:
                    await asyncio.gather(producer, return_exceptions=True)
                finally:  # even when this task is cancelled again meanwhile
                    await stream.aclose()
        finally:
            self._error = None
            if visual is not None:
                visual.close()
            # Not cancel_futures: the queued encoder.abort() must still run to free x264.
            self._encode_pool.shutdown(wait=False)

    def _accepted(self, visual: Visual) -> Accepted:
        return Accepted(
            request_id=self.spec.request_id,
            model=self.model.name,
            width=visual.width,
            height=visual.height,
            fps=visual.fps,
            seed=self.spec.seed,
            mime_type=mime_type((visual.width, visual.height), visual.fps),
            unused_prompt_words=self._steering.unused_words,
            face_box=visual.face_box,
        )

    async def _open_model(self, visual: Visual) -> ModelStream:
        if InputKind.VIDEO in self.model.inputs:
            return await self.backend.open_lipsync(
                visual.fps, self.spec.face_index, visual.face_select_box
            )
        s = self.spec
        options: dict[str, np.ndarray] = {"SEED": np.array([s.seed], dtype=np.uint64)}
        delivery = self._steering.delivery  # "calm" / "energetic" in the prompt
        for name, value in (
            ("EXPRESSION_SCALE", _scaled(s.expression_scale, delivery)),
            ("HEAD_MOTION_SCALE", _scaled(s.head_motion_scale, delivery)),
            ("BLINK_RATE", s.blink_rate),
        ):
            if value is not None:
                options[name] = np.array([value], dtype=np.float32)
        if s.transcript:
            options["TRANSCRIPT"] = np.array([s.transcript.encode()], dtype=np.object_)
        return await self.backend.open_avatar(visual.portrait, visual.landmarks, s.fps, options)

    # --- the concurrent stages ------------------------------------------------------------------
    async def _produce(self, inputs, first_event, stream: ModelStream, visual: Visual) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed_model(inputs, first_event, stream, visual))
                group.create_task(self._receive_frames(stream))
                group.create_task(self._encode(visual))
        # Errors leave here without the tracebacks they came with. Python 3.11's TaskGroup
        # keeps the exception it raises in a local of its __aexit__ frame, which that
        # exception's traceback refers to: a reference cycle that passes through this frame
        # and so holds the whole generation until a full garbage collection (measured: a few
        # hundred finished generations and their codec threads piling up under load).
        except asyncio.CancelledError as exc:
            if asyncio.current_task().cancelling():
                # run() is closing (the client went away): nobody reads the events any more,
                # and putting _DONE into a full queue would block this task forever.
                raise without_traceback(exc) from None
            self._error = Unavailable("the server stopped this generation early; retry")
        except BaseExceptionGroup as group_error:
            error = _first_error(group_error)
            if not isinstance(error, A2VError):  # a bug: log it with where it happened
                log.error("generation crashed", exc_info=error)
            without_traceback(group_error)  # error is one of its members
            self._error = error
        except Exception as exc:
            self._error = exc
        await self._events.put(_DONE)

    async def _feed_model(self, inputs, first_event, stream: ModelStream, visual: Visual) -> None:
        """Decoded audio -> encoder (output track) and the model (with video frames: lipsync)."""
        feed = _ModelFeed(stream, visual, self.spec.sync_mode, self._fps)
        out_total = 0  # output-rate samples given to the encoder
        channels = 1
        blocks = audio_blocks(inputs, first_event, self.spec, self.settings, self._clock)
        # aclosing: the decoder (and its span) is closed in this task even when cancelled
        async with contextlib.aclosing(blocks):
            async for block in blocks:
                self._check_lag(feed.total)
                model_pcm, output_pcm = block.model_pcm, block.output_pcm
                channels = output_pcm.shape[0]
                if feed.sample_limit is not None:  # cut_off: the video is shorter than the audio
                    model_pcm = model_pcm[: max(0, feed.sample_limit - feed.total)]
                    out_limit = feed.sample_limit * OUTPUT_RATE // MODEL_RATE
                    output_pcm = output_pcm[:, : max(0, out_limit - out_total)]
                if output_pcm.shape[1]:
                    await self._encode_queue.put(("audio", output_pcm))
                    out_total += output_pcm.shape[1]
                await feed.add(model_pcm)
                self._audio_seconds = feed.total / MODEL_RATE
        padding = feed.padding_samples()  # silence mode: pad the audio to the video's length
        if padding:
            await self._encode_queue.put(
                ("audio", np.zeros((channels, padding * OUTPUT_RATE // MODEL_RATE), np.float32))
            )
            await feed.add(np.zeros(padding, np.float32))
        if feed.total == 0:
            raise InvalidInput("the audio contains no samples (after trimming)", field="audio")
        self._frames_total = await feed.finish()

    def _check_lag(self, samples: int) -> None:
        """End a stream whose audio falls too far behind real time (a slow sender)."""
        now = time.monotonic()
        if self._audio_started is None:
            self._audio_started = now
            return
        lag = (now - self._audio_started) - samples / MODEL_RATE
        if lag > self.settings.max_audio_lag_seconds:
            raise DeadlineExceeded(
                f"the audio arrives slower than real time ({lag:.1f} s behind after "
                f"{now - self._audio_started:.1f} s): a live source must send at least as fast "
                "as it plays"
            )

    async def _receive_frames(self, stream: ModelStream) -> None:
        with tracer.start_as_current_span("inference.render") as span:
            t = time.monotonic()
            received = 0
            batches = stream.batches()
            try:
                async for batch in batches:
                    if batch.first_index != received:
                        raise A2VError(
                            f"the model skipped frames (got {batch.first_index}, "
                            f"expected {received})"
                        )
                    if self.spec.include_timeline:
                        await self._events.put(self._timeline(batch))
                    self._audio_kind = batch.audio_kind or self._audio_kind
                    received += len(batch.frames)
                    await self._encode_queue.put(("video", batch))
            finally:
                # Close it here, in this task: its cleanup ends the Triton sequence (ABORT)
                # at once, instead of whenever the garbage collector gets to it.
                await batches.aclose()
            self._clock.inference += time.monotonic() - t
            span.set_attribute("a2v.frames", received)
        await self._encode_queue.put(("close", None))

    async def _encode(self, visual: Visual) -> None:
        loop = asyncio.get_running_loop()
        encoder: FragmentedMp4Encoder | None = None
        styler = (
            FrameStyler(
                self._steering,
                (visual.width, visual.height),
                visual.fps,
                self.spec.seed,
                visual.face_box,
            )
            if self._steering.changes_frames
            else None
        )
        # Models that send only the changing region get it pasted into this one full frame
        # (the rest never changes), not into a fresh copy of the portrait for every frame.
        canvas = visual.portrait.copy() if visual.portrait is not None else None
        last_progress = 0
        with tracer.start_as_current_span("encode") as span:
            try:
                while True:
                    kind, payload = await self._encode_queue.get()
                    if encoder is None:
                        channels = payload.shape[0] if kind == "audio" else 1
                        # Lipsync promises the source's pixels outside the mouth: spend more
                        # bits so the re-encode stays faithful (about 38 dB PSNR and up).
                        crf = 16 if visual.frames is not None else 20
                        encoder = FragmentedMp4Encoder(
                            visual.width, visual.height, visual.fps, channels, crf=crf
                        )
                    if kind == "close":
                        break
                    if kind == "audio":
                        segments = await self._in_encoder(loop, encoder.add_audio, payload)
                    else:
                        segments = await self._in_encoder(
                            loop, _add_frames, encoder, payload, styler, canvas
                        )
                        self._frames_done += len(payload.frames)
                    await self._emit(segments)
                    if self._frames_done - last_progress >= self._fps:
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
                    # Queued behind any call still running in the encode thread (PyAV objects
                    # belong to that thread); after a normal close it does nothing.
                    self._encode_pool.submit(encoder.abort)

    async def _in_encoder(self, loop, fn, *args):
        t = time.monotonic()
        result = await loop.run_in_executor(self._encode_pool, fn, *args)
        self._clock.encode += time.monotonic() - t
        return result

    async def _emit(self, segments) -> None:
        for segment in segments:
            if self._first_chunk_at is None:
                self._first_chunk_at = time.monotonic()
            await self._events.put(Chunk(self._chunks, segment))
            self._chunks += 1
            self._bytes += len(segment.data)

    # --- events ---------------------------------------------------------------------------------
    def _timeline(self, batch: FrameBatch) -> Timeline:
        frames = []
        for k in range(len(batch.frames)):
            index = batch.first_index + k
            pose = batch.head_pose[k] if batch.head_pose is not None else (0.0, 0.0, 0.0)
            frames.append(
                TimelineFrame(
                    index=index,
                    time_seconds=index / self._fps,
                    mouth_open=float(batch.mouth_open[k]),
                    viseme=int(batch.viseme[k]) if batch.viseme is not None else 0,
                    head_pose=tuple(float(v) for v in pose),  # type: ignore[arg-type]
                    blink=float(batch.blink[k]) if batch.blink is not None else 0.0,
                )
            )
        return Timeline(tuple(frames))

    def _progress(self) -> Progress:
        return Progress(self._frames_done, self._frames_total, self._audio_seconds)

    def _summary(self) -> Summary:
        now = time.monotonic()
        return Summary(
            frames=self._frames_done,
            duration_seconds=self._frames_done / self._fps,
            bytes=self._bytes,
            chunks=self._chunks,
            timings=Timings(
                total=now - self._t0,
                first_chunk=(self._first_chunk_at or now) - self._t0,
                decode=self._clock.decode,
                inference=self._clock.inference,
                encode=self._clock.encode,
            ),
            audio_kind=self._audio_kind,
        )


class _ModelFeed:
    """Sends audio (and, for lipsync, the matching video frames) to the model stream.

    Output frame i shows the audio at i / fps. Frames go out as soon as the audio that covers
    them has been sent, mapped to source frames by the sync mode; remap needs the final length
    and so sends its frames at the end.
    """

    def __init__(self, stream: ModelStream, visual: Visual, mode: str, fps: float) -> None:
        self._stream = stream
        self._store = visual.frames
        self._mode = mode
        self._fps = fps
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._frames_sent = 0
        self.total = 0  # model-rate samples received
        n_src = self._store.count if self._store is not None else 0
        self._n_src = n_src
        #: cut_off: no audio beyond the video's end
        self.sample_limit = (
            round(n_src * MODEL_RATE / fps)
            if self._store is not None and mode == "cut_off"
            else None
        )

    async def add(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self._pending_n += len(samples)
        self.total += len(samples)
        if self._pending_n >= MODEL_CHUNK:
            await self._send(last=False)

    def padding_samples(self) -> int:
        if self._store is None or self._mode != "silence":
            return 0
        return max(0, round(self._n_src * MODEL_RATE / self._fps) - self.total)

    async def finish(self) -> int:
        """Send the rest; returns the clip's frame count."""
        await self._send(last=True)
        return round(self.total * self._fps / MODEL_RATE)

    async def _send(self, *, last: bool) -> None:
        audio = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending, self._pending_n = [], 0
        frames = indices = None
        if self._store is not None:
            n_out = round(self.total * self._fps / MODEL_RATE)
            covered = n_out if last else int(self.total * self._fps / MODEL_RATE)
            if self._mode == "remap" and not last:
                covered = 0
            if covered > self._frames_sent:
                indices = np.array(
                    [
                        source_index(i, self._n_src, self._mode, n_out)
                        for i in range(self._frames_sent, covered)
                    ],
                    dtype=np.int64,
                )
                frames = await asyncio.to_thread(_gather, self._store, indices)
                self._frames_sent = covered
        await self._stream.send_audio(audio, last=last, frames=frames, source_index=indices)


def _gather(store, indices: np.ndarray) -> np.ndarray:
    return np.stack([store[int(i)] for i in indices])


def _add_frames(
    encoder: FragmentedMp4Encoder,
    batch: FrameBatch,
    styler: FrameStyler | None,
    canvas: np.ndarray | None,
) -> list:
    segments = []
    for k, frame in enumerate(batch.frames):
        changed = None
        if batch.region is not None and canvas is not None:
            x0, y0, x1, y1 = batch.region  # the model sent only the part that changes
            canvas[y0:y1, x0:x1] = frame  # safe to reuse: the encoder copies each frame
            frame = canvas
            changed = batch.region  # ... and the encoder converts only that part
        if styler is not None:
            frame = styler.apply(batch.first_index + k, frame)
            changed = None  # looks and camera moves change every pixel
        segments.extend(encoder.add_video(frame, changed))
    return segments


def _scaled(value: float | None, factor: float) -> float | None:
    """A motion scale times the prompt's delivery factor (None stays None when factor is 1)."""
    if factor == 1.0:
        return value
    return min(2.0, (1.0 if value is None else value) * factor)


async def _paced(inputs: AsyncIterator[InputEvent], settings: Settings):
    """The input events, with the idle timeout and the message-rate limit applied."""
    seconds = settings.idle_timeout_seconds
    rate = settings.max_messages_per_second
    tokens, last = rate, time.monotonic()  # token bucket: a burst of `rate` messages
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
        now = time.monotonic()
        tokens = min(rate, tokens + (now - last) * rate) - 1.0
        last = now
        if tokens < 0:
            raise ResourceExhausted(
                f"more than {rate:g} messages per second: send fewer, larger messages (20-100 "
                "ms of audio, or file pieces of 64 KiB and more, each)",
                field="audio",
            )
        yield event


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


# H.264 levels: (level_idc hex, max macroblocks per frame, max macroblocks per second)
_LEVELS = [
    ("0d", 396, 11880), ("15", 792, 19800), ("16", 1620, 20250), ("1e", 1620, 40500),
    ("1f", 3600, 108000), ("20", 5120, 216000), ("28", 8192, 245760), ("2a", 8704, 522240),
    ("32", 22080, 589824), ("33", 36864, 983040), ("34", 36864, 2073600),
]  # fmt: skip


def mime_type(size: tuple[int, int], fps: float) -> str:
    """RFC 6381 type of the stream (H.264 High profile at the level the size needs, AAC-LC)."""
    mbs = ((size[0] + 15) // 16) * ((size[1] + 15) // 16)
    level = next((name for name, fs, mbps in _LEVELS if mbs <= fs and mbs * fps <= mbps), "34")
    return f'video/mp4; codecs="avc1.6400{level},mp4a.40.2"'
