"""One generation, from input events to output events. No gRPC here.

Stages run concurrently and hand work on through bounded queues, so a slow consumer pushes back
on everything upstream (and, through HTTP/2 flow control, on the client):

  inputs --> audio decode --> model feed --> Triton sequence (talking_avatar | lipsync) --+
                  \\--------------- output audio ---------------> encoder task <------+
                                                                --> events (chunks, ...)

CPU-heavy work (decoding, framing, H.264/AAC encode) runs in worker threads; the event loop
only moves data. The visual input is prepared first (visual.py): the Accepted message goes out
as soon as the face is found and the frame size is known. The counters live in ``stats``, the
input limits in ``pacing``, audio-to-model in ``model_feed``, frames-to-encoder in ``compose``.

Over 300 lines on purpose: the stages and the queue protocol that joins them ("audio" / "video"
/ "close" items, the _DONE sentinel, who closes what on cancel) read best side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from opentelemetry import trace

from a2v_server.catalog import MODEL_SAMPLE_RATE, InputKind, OfferedModel, frame_count
from a2v_server.domain import (
    Accepted,
    BeatGrid,
    Chunk,
    GenerateSpec,
    InputEvent,
    OutputEvent,
    Timeline,
)
from a2v_server.errors import (
    A2VError,
    InvalidInput,
    ModelFault,
    Unavailable,
    root_cause,
    without_traceback,
)
from a2v_server.inference.backend import (
    AnalysisOptions,
    AvatarOptions,
    Backend,
    FrameBatch,
    LipsyncOptions,
    ModelStream,
)
from a2v_server.media.audio_blocks import OUTPUT_RATE
from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.fmp4 import Segment
from a2v_server.media.mime import mime_type
from a2v_server.media.yuv import BT709, Converter
from a2v_server.pipeline.audio_input import audio_blocks, next_or_missing_end
from a2v_server.pipeline.compose import (
    AVATAR_ENCODING,
    LIPSYNC_ENCODING,
    encode_batch,
    encode_lipsync,
    timeline,
)
from a2v_server.pipeline.honoured import ignored_settings, setting_warnings
from a2v_server.pipeline.lipsync_frames import Waiting
from a2v_server.pipeline.look import FrameStyler, parse_prompt, prompt_kinds
from a2v_server.pipeline.model_feed import ModelFeed
from a2v_server.pipeline.pacing import AudioLag, ClientPace
from a2v_server.pipeline.ranges import FrameRange, batch_part, snap
from a2v_server.pipeline.report import FragmentReporter
from a2v_server.pipeline.speakers import MultiStream, SpeakerGates
from a2v_server.pipeline.stats import GenerationStats
from a2v_server.pipeline.video_input import VideoInput
from a2v_server.pipeline.visual import Visual, prepare_portrait, prepare_video, read_visual
from a2v_server.settings import Settings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("a2v_server")

_DONE = object()


class Generation:
    """Runs one Generate call. ``run()`` is an async generator of output events."""

    def __init__(
        self, spec: GenerateSpec, model: OfferedModel, backend: Backend, settings: Settings
    ):
        self.spec = spec
        self.model = model
        self.backend = backend
        self.settings = settings
        self._events: asyncio.Queue[Any] = asyncio.Queue(maxsize=32)
        self._encode_queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=16)
        # PyAV encoder objects are used from one thread only
        self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="a2v-encode")
        self.stats = GenerationStats(spec.fps)
        self._clock = self.stats.clock
        self._steering = parse_prompt(spec.prompt)
        self._pace = ClientPace(settings)
        self._error: BaseException | None = None
        #: GenerateConfig.range in frames, once the frame rate is known (None: the whole clip)
        self._range: FrameRange | None = None
        #: the per-fragment quality report, made as frames are encoded
        self._reporter: FragmentReporter | None = None
        #: several speakers: who speaks when (speakers.py)
        self._gates: SpeakerGates | None = None
        #: include_timeline: the clip's audio at the model rate, for its beat grid (the same
        #: analysis as Analyze's), and that grid once the audio is complete
        self._clip_audio: list[np.ndarray] | None = [] if spec.include_timeline else None
        self._beat_grid: asyncio.Future[BeatGrid | None] | None = None
        #: set once the first frame is encoded (or the encoder ends): the feed holds the
        #: model's audio past the first frame's until then (ModelFeed.hold_after_first)
        self._first_encoded = asyncio.Event()

    # ------------------------------------------------------------------------------------------
    async def run(self, inputs: AsyncIterator[InputEvent]) -> AsyncGenerator[OutputEvent, None]:
        inputs = self._pace.events(inputs)
        visual: Visual | None = None
        video_input: VideoInput | None = None
        try:
            if InputKind.VIDEO in self.model.inputs:
                # The video is read (and decoded) while it arrives, interleaved with the audio.
                video_input = VideoInput(inputs, self.model.name, self.settings)
                visual = await prepare_video(
                    video_input, self.spec, self.backend, self.settings, self._clock
                )
                inputs = video_input.events()
            else:
                portrait, next_event = await read_visual(inputs, self.model, self.settings)
                visual = await prepare_portrait(
                    portrait, self.spec, self.backend, self.settings, self._clock
                )
            self.stats.fps = visual.fps
            if self.spec.render_range is not None:
                self._range = snap(*self.spec.render_range, visual.fps)
            accepted = self._accepted(visual)
            yield accepted
            if video_input is not None:
                next_event = await next_or_missing_end(inputs)
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
                damage = visual.lipsync.source.video.damage if visual.lipsync else None
                if damage:
                    self.stats.warnings.append(damage)
                yield self.stats.summary()
            finally:
                producer.cancel()
                try:
                    await asyncio.gather(producer, return_exceptions=True)
                finally:  # even when this task is cancelled again meanwhile
                    await stream.aclose()
        finally:
            self._error = None
            if video_input is not None:
                video_input.spool.abort()  # a decoder waiting for bytes stops
            if visual is not None:
                visual.close()
            if video_input is not None:
                await video_input.aclose()
            # Not cancel_futures: the queued encoder.abort() must still run to free x264.
            self._encode_pool.shutdown(wait=False)

    def _accepted(self, visual: Visual) -> Accepted:
        # Words of phrase kinds this model does not apply (delivery on lipsync) are unused too.
        unused = parse_prompt(self.spec.prompt, prompt_kinds(self.model)).unused_words
        return Accepted(
            request_id=self.spec.request_id,
            model=self.model.name,
            width=visual.width,
            height=visual.height,
            fps=visual.fps,
            seed=self.spec.seed,
            mime_type=mime_type((visual.width, visual.height), visual.fps),
            unused_prompt_words=unused,
            face_box=visual.face_box,
            ignored_settings=ignored_settings(self.spec, self.model, visual.fps),
            warnings=setting_warnings(self.spec, self.model) + visual.warnings,
            render_range=None
            if self._range is None
            else (self._range.start_seconds, self._range.end_seconds),
            faces=visual.faces,
        )

    async def _open_model(self, visual: Visual) -> ModelStream:
        if not self.spec.speakers:
            return await self._open_one(visual)
        # Several speakers: a stream per face (speakers.py), opened together.
        video = InputKind.VIDEO in self.model.inputs
        opened = await asyncio.gather(
            *(self._open_one(visual, speaker=n) for n in range(len(self.spec.speakers))),
            return_exceptions=True,
        )
        streams = [o for o in opened if not isinstance(o, BaseException)]
        if len(streams) < len(opened):
            await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
            raise next(o for o in opened if isinstance(o, BaseException))
        self._gates = SpeakerGates(self.spec.speakers, OUTPUT_RATE)
        return MultiStream(streams, self._gates, visual.fps, show_all=not video)

    async def _open_one(self, visual: Visual, speaker: int | None = None) -> ModelStream:
        """The model stream of the face (a speaker's, or the one face)."""
        if InputKind.VIDEO in self.model.inputs:
            index, box = (
                (self.spec.speakers[speaker].face_index, visual.speaker_boxes[speaker])
                if speaker is not None
                else (self.spec.face_index, visual.face_select_box)
            )
            assert visual.lipsync is not None
            colour = visual.lipsync.source.colour.matrix_number
            return await self.backend.open_lipsync(
                LipsyncOptions(visual.fps, index, box, colour_matrix=colour)
            )
        landmarks, mesh = (
            visual.speaker_faces[speaker]
            if speaker is not None
            else (visual.landmarks, visual.mesh)
        )
        s = self.spec
        assert visual.portrait is not None and landmarks is not None  # an avatar's visual
        options = AvatarOptions(
            fps=s.fps,
            seed=s.seed,
            expression_scale=self._steering.scaled(s.expression_scale),
            head_motion_scale=self._steering.scaled(s.head_motion_scale),
            blink_rate=s.blink_rate,
            transcript=s.transcript,
        )
        if self._first_frame:
            return await self.backend.open_avatar(
                visual.portrait, landmarks, options, mesh=mesh, start_frame=self._first_frame
            )
        return await self.backend.open_avatar(visual.portrait, landmarks, options, mesh=mesh)

    # --- the concurrent stages ------------------------------------------------------------------
    async def _produce(
        self,
        inputs: AsyncIterator[InputEvent],
        first_event: InputEvent,
        stream: ModelStream,
        visual: Visual,
    ) -> None:
        if self.spec.include_timeline:
            self._beat_grid = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed_model(inputs, first_event, stream, visual))
                group.create_task(self._receive_frames(stream, visual))
                group.create_task(self._encode(visual))
        # Errors leave here without the tracebacks they came with. Python 3.11's TaskGroup
        # keeps the exception it raises in a local of its __aexit__ frame, which that
        # exception's traceback refers to: a reference cycle that passes through this frame
        # and so holds the whole generation until a full garbage collection (measured: a few
        # hundred finished generations and their codec threads piling up under load).
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # run() is closing (the client went away): nobody reads the events any more,
                # and putting _DONE into a full queue would block this task forever.
                raise without_traceback(exc) from None
            self._error = Unavailable("the server stopped this generation early; retry")
        except BaseExceptionGroup as group_error:
            error = root_cause(group_error)
            if not isinstance(error, A2VError):  # a bug: log it with where it happened
                log.error("generation crashed", exc_info=error)
            without_traceback(group_error)  # error is one of its members
            self._error = error
        except Exception as exc:
            self._error = exc
        await self._events.put(_DONE)

    async def _feed_model(
        self,
        inputs: AsyncIterator[InputEvent],
        first_event: InputEvent,
        stream: ModelStream,
        visual: Visual,
    ) -> None:
        """Decoded audio -> encoder (output track) and the model (with video frames: lipsync)."""
        feed = ModelFeed(stream, visual, self.spec.sync_mode, self.stats.fps)
        out_total = 0  # output-rate samples of the clip so far
        clip_samples = 0  # model-rate samples of the clip so far (the model may get fewer)
        channels = 1
        # A range: the encoder gets the range's audio only; the model all of it up to the
        # range's end and its lookahead (ranges.py).
        out_from, out_to = 0, None
        model_to = None
        lookahead = await self.backend.lookahead_seconds(self.model.renderer)
        if self._range is not None:
            out_from, out_to = self._range.output_samples(OUTPUT_RATE)
            model_to = self._range.model_samples(lookahead)
        elif lookahead > 0:  # the first frame's audio, the rest once it is encoded
            first = math.ceil((1 / self.stats.fps + lookahead) * MODEL_SAMPLE_RATE)
            feed.hold_after_first(first, self._first_encoded)

        async def to_encoder(pcm: np.ndarray) -> None:
            nonlocal out_total
            a, b = out_total, out_total + pcm.shape[1]
            out_total = b
            stop = pcm.shape[1] if out_to is None else max(0, out_to - a)
            keep = pcm[:, max(0, out_from - a) : stop]
            if keep.shape[1]:
                await self._encode_queue.put(("audio", keep))

        blocks = audio_blocks(inputs, first_event, self.spec, self.settings, self._clock)
        # aclosing: the decoder (and its span) is closed in this task even when cancelled
        lag = AudioLag(self.settings.max_audio_lag_seconds)
        async with contextlib.aclosing(blocks):
            while True:
                try:
                    block = await lag.next_block(blocks)
                except StopAsyncIteration:
                    break
                lag.check(feed.total)
                model_pcm, output_pcm = block.model_pcm, block.output_pcm
                channels = output_pcm.shape[0]
                if self._gates is not None:  # several speakers: channel routing listens
                    self._gates.check_channels(channels)
                    self._gates.observe(output_pcm)
                limit = await feed.sample_limit(feed.total + len(model_pcm))
                if limit is not None:  # cut_off: the video is shorter than the audio
                    model_pcm = model_pcm[: max(0, limit - feed.total)]
                    out_limit = limit * OUTPUT_RATE // MODEL_SAMPLE_RATE
                    output_pcm = output_pcm[:, : max(0, out_limit - out_total)]
                if output_pcm.shape[1]:
                    await to_encoder(output_pcm)
                clip_samples += len(model_pcm)
                if self._clip_audio is not None:
                    self._clip_audio.append(model_pcm)
                if model_to is not None:  # a range ends before the audio: the rest is unused
                    model_pcm = model_pcm[: max(0, model_to - feed.total)]
                await feed.add(model_pcm)
                self.stats.audio_seconds = clip_samples / MODEL_SAMPLE_RATE
        padding = await feed.padding_samples()  # silence mode: pad the audio to the video's length
        if padding:
            await to_encoder(
                np.zeros((channels, padding * OUTPUT_RATE // MODEL_SAMPLE_RATE), np.float32)
            )
            clip_samples += padding
            await feed.add(np.zeros(padding, np.float32))
        if feed.total == 0:
            raise InvalidInput("the audio contains no samples (after trimming)", field="audio")
        if feed.frames == 0:  # under half a frame: never end OK with an empty clip
            fps = self.stats.fps
            raise InvalidInput(
                f"the audio lasts {1000 * feed.total / MODEL_SAMPLE_RATE:.0f} ms, too short for "
                f"one video frame at {fps:g} fps: send at least {500 / fps:.0f} ms of audio",
                field="audio",
            )
        await feed.finish()
        if self._clip_audio is not None and self._beat_grid is not None:
            audio, self._clip_audio = self._clip_audio, None
            self._beat_grid.set_result(await self._analyse_beats(audio))
        clip_frames = frame_count(clip_samples, self.stats.fps)
        if self._range is None:
            self.stats.frames_total = clip_frames
            return
        self.stats.frames_total = self._range.frames_of(clip_frames)
        if not self.stats.frames_total:
            raise InvalidInput(
                f"the range starts at {self._range.start_seconds:g} s (snapped to a keyframe), "
                f"at or after the end of the audio ({clip_frames / self.stats.fps:.2f} s): give "
                "a range within the audio",
                field="config.range",
            )

    async def _receive_frames(self, stream: ModelStream, visual: Visual) -> None:
        with tracer.start_as_current_span("inference.render") as span:
            t = time.monotonic()
            # the talking avatar starts at a range's first frame, lipsync at the clip's
            received = self._first_frame if visual.lipsync is None else 0
            batches = stream.batches()
            try:
                async for whole in batches:
                    if whole.first_index != received:
                        raise ModelFault(
                            f"the model skipped frames (got {whole.first_index}, "
                            f"expected {received})"
                        )
                    received += len(whole.frames)
                    if visual.lipsync is not None:  # the next frames' window follows the face
                        visual.lipsync.window.seen(whole.face_boxes, whole.face_found)
                    batch = await self._in_range(whole, visual)
                    if batch is None:
                        continue
                    if self.spec.include_timeline:
                        await self._events.put(timeline(batch, self.stats.fps))
                    self.stats.audio_kind = batch.audio_kind or self.stats.audio_kind
                    self.stats.count_mouths(batch.mouth_source)
                    await self._encode_queue.put(("video", batch))
            finally:
                # Close it here, in this task: its cleanup ends the Triton sequence (ABORT)
                # at once, instead of whenever the garbage collector gets to it.
                await batches.aclose()
            self._clock.inference += time.monotonic() - t
            span.set_attribute("a2v.frames", received)
        if self._beat_grid is not None and (grid := await self._beat_grid) is not None:
            await self._events.put(Timeline(frames=(), beat_grid=grid))
        await self._encode_queue.put(("close", None))

    @property
    def _first_frame(self) -> int:
        """The output's first frame in the clip: a range's first, else 0."""
        return self._range.first if self._range is not None else 0

    async def _analyse_beats(self, audio: list[np.ndarray]) -> BeatGrid | None:
        """The clip's beat grid from the audio_analysis model (the timeline's side output: a
        failure there is logged, and the clip goes on without it)."""
        samples = np.concatenate(audio) if audio else np.zeros(0, np.float32)
        try:
            analysis = await self.backend.analyze_audio(
                samples, AnalysisOptions(fps=self.stats.fps, parts=("beats",))
            )
        except A2VError as exc:
            log.warning("no beat grid for the timeline: %s", exc.message)
            return None
        return analysis.beat_grid

    async def _in_range(self, batch: FrameBatch, visual: Visual) -> FrameBatch | None:
        """The frames of ``batch`` inside the range (all without one; None: none). Lipsync's
        frames outside it are rendered for the model's state only: dropped here, with the
        source frames the feed kept for them."""
        if self._range is None:
            return batch
        n = len(batch.frames)
        a, b = self._range.part(batch.first_index, n)
        if visual.lipsync is not None:
            for lo, hi in ((0, a), (b, n)):
                if hi > lo:
                    await visual.lipsync.in_flight.take(batch.first_index + lo, hi - lo)
        if a == b:
            return None
        return batch if (a, b) == (0, n) else batch_part(batch, a, b)

    async def _encode(self, visual: Visual) -> None:
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
        lipsync = visual.lipsync
        # lipsync: the output is made in the source's colour (its own samples pass through)
        colour = lipsync.source.colour if lipsync is not None else None
        paste = Converter(colour) if colour is not None else None
        self._reporter = FragmentReporter(
            visual.fps, self._first_frame, OUTPUT_RATE, mode=self.spec.sync_mode
        )
        last_progress = 0
        with tracer.start_as_current_span("encode") as span:
            try:
                while True:
                    kind, payload = await self._encode_queue.get()
                    if encoder is None:
                        channels = payload.shape[0] if kind == "audio" else 1
                        encoder = FragmentedMp4Encoder(
                            visual.width,
                            visual.height,
                            visual.fps,
                            channels,
                            colour=colour or BT709,
                            start_frame=self._first_frame,
                            **(LIPSYNC_ENCODING if lipsync is not None else AVATAR_ENCODING),
                        )
                        if canvas is not None and styler is None and kind == "audio":
                            # Usually the audio comes first, while the model still sets up:
                            # convert the portrait now, so the first frame converts only
                            # the region it changes.
                            await self._in_encoder(_primed, encoder, canvas)
                    if kind == "close":
                        break
                    if kind == "audio":
                        self._reporter.add_audio(payload)
                        segments = await self._in_encoder(encoder.add_audio, payload)
                    elif lipsync is not None:
                        waiting = await lipsync.in_flight.take(
                            payload.first_index, len(payload.frames)
                        )
                        self._report_lipsync(payload, waiting, visual.height)
                        segments = await self._in_encoder(
                            encode_lipsync, encoder, payload, waiting, paste, styler
                        )
                        self.stats.frames_done += len(payload.frames)
                    else:
                        self._reporter.add_frames(
                            payload.first_index, payload.mouth_open, None, visual.face_score
                        )
                        segments = await self._in_encoder(
                            encode_batch, encoder, payload, styler, canvas
                        )
                        self.stats.frames_done += len(payload.frames)
                    await self._emit(segments)
                    if self.stats.frames_done:
                        self._first_encoded.set()
                    if self.stats.frames_done - last_progress >= self.stats.fps:
                        last_progress = self.stats.frames_done
                        await self._events.put(self.stats.progress())
                if self.stats.frames_done != self.stats.frames_total:
                    raise ModelFault(
                        f"the model returned {self.stats.frames_done} frames, expected "
                        f"{self.stats.frames_total}"
                    )
                if encoder is not None:
                    await self._emit(await self._in_encoder(encoder.close))
                await self._events.put(self.stats.progress())
                span.set_attribute("a2v.bytes", self.stats.bytes)
            finally:
                self._first_encoded.set()  # the feed never waits for an encoder that is gone
                if encoder is not None:
                    # Queued behind any call still running in the encode thread (PyAV objects
                    # belong to that thread); after a normal close it does nothing.
                    self._encode_pool.submit(encoder.abort)

    async def _in_encoder(self, fn: Callable[..., list[Segment]], *args: Any) -> list[Segment]:
        t = time.monotonic()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._encode_pool, fn, *args)
        self._clock.encode += time.monotonic() - t
        return result

    def _report_lipsync(self, batch: FrameBatch, waiting: list[Waiting], height: int) -> None:
        assert self._reporter is not None  # made with the encoder
        found = batch.face_found
        score = batch.face_score
        if score is None:  # an older model: a tracked face counts as sure
            score = np.ones(len(batch.frames), np.float32) if found is None else found
        self._reporter.add_frames(
            batch.first_index,
            batch.mouth_open,
            found,
            score,
            slots=[w.slot for w in waiting],
            lumas=[w.frame.i420[:height] for w in waiting],
        )

    async def _emit(self, segments: list[Segment]) -> None:
        for segment in segments:
            report = self._reporter.report(segment) if self._reporter is not None else None
            await self._events.put(Chunk(self.stats.chunks, segment, report))
            self.stats.chunk_sent(len(segment.data))


def _primed(encoder: FragmentedMp4Encoder, canvas: np.ndarray) -> list[Segment]:
    encoder.prime(canvas)
    return []
