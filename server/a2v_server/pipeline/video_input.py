"""The lipsync input stream: video pieces to the spool, everything else on to the audio path.

A speaker video may arrive interleaved with the audio (the contract allows it, the client does
it), so one task reads the client stream for the whole generation: video bytes go into the
Spool (decoded as they arrive, media/video.py), every other event into a queue the audio
decoder reads. The video's first piece must come before any audio; the video ends at a piece
marked ``last`` or at the end message. A video is a file's bytes (decoded as they arrive:
media/video.py) or uncompressed frames (stored as they come: media/raw_video.py), as its
first piece says.

Audio events are queued without blocking the reader while the video is incomplete: the
pipeline may be waiting for video bytes that come after them, and blocking here would deadlock
it. Their bytes are bounded (the audio limit); once the video is complete the queue is bounded
and pushes back on the client as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from a2v_server.domain import (
    EncodedAudioPiece,
    EndOfInput,
    ImagePiece,
    InputEvent,
    PcmAudioPiece,
    VideoPiece,
)
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media.raw_video import RawVideo
from a2v_server.media.spool import Spool
from a2v_server.media.video import MAX_VIDEO_FRAMES, SourceVideo
from a2v_server.pipeline.audio_input import next_or_missing_end, unexpected
from a2v_server.settings import Settings

#: events that wait for the audio decoder once the video is complete
QUEUE_LIMIT = 32
_END = object()


class VideoInput:
    """Reads the client stream in a task of its own; see the module doc."""

    def __init__(self, inputs: AsyncIterator[InputEvent], model: str, settings: Settings) -> None:
        self._model = model
        self._settings = settings
        self.spool = Spool(settings.max_video_bytes)
        self._raw: RawVideo | None = None
        self._started = asyncio.Event()  # the first piece is in (or the input failed)
        self._inputs = inputs
        self._max_audio_bytes = settings.max_audio_bytes
        self._queued_bytes = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = asyncio.Condition()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._read(), name="a2v-video-input")

    async def _read(self) -> None:
        try:
            first = await next_or_missing_end(self._inputs)
            if not isinstance(first, VideoPiece):
                if isinstance(first, (EncodedAudioPiece, PcmAudioPiece, EndOfInput)):
                    raise InvalidInput(
                        "the speaker video is missing: send video messages (MP4, MOV or WebM) "
                        "after the config and before the audio",
                        field="video",
                    )
                if isinstance(first, ImagePiece):
                    raise InvalidInput(
                        f"model {self._model} takes a video of a speaker, not an image: send "
                        "video messages (or choose the talking_avatar model)",
                        field="image",
                    )
                unexpected(first, "video")
            if first.frame is not None:  # uncompressed frames: stored as they come
                self.spool.close()
                self.spool = Spool(self._settings.max_raw_video_bytes)
                self._raw = RawVideo(
                    self.spool,
                    max_pixels=self._settings.max_image_pixels,
                    max_frames=MAX_VIDEO_FRAMES,
                )
            self._video(first)
            self._started.set()
            async for event in self._inputs:
                if isinstance(event, VideoPiece) and not self.spool.complete:
                    self._video(event)
                    continue
                if isinstance(event, EndOfInput):
                    self.spool.finish()
                await self._put(event)
            await self._queue.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            self.spool.abort()  # wake the decoder waiting for bytes
            self._started.set()
            await self._queue.put(exc)

    def _video(self, event: VideoPiece) -> None:
        if event.frame is not None:
            if self._raw is None:
                raise InvalidInput(
                    "a raw video frame came after video file bytes: send a file or raw frames, "
                    "not both",
                    field="video",
                )
            self._raw.add(event.frame)
        elif event.data:
            if self._raw is not None:
                raise InvalidInput(
                    "video file bytes came after raw video frames: send a file or raw frames, "
                    "not both",
                    field="video",
                )
            self.spool.write(event.data)
        if event.last:
            self.spool.finish()

    async def source(self) -> SourceVideo | RawVideo:
        """The speaker video, once its first piece has come: decoded (a file) or raw frames."""
        await self._started.wait()
        if self.error is not None:
            raise self.error
        if self._raw is not None:
            return self._raw
        return SourceVideo(
            self.spool, max_pixels=self._settings.max_image_pixels, max_frames=MAX_VIDEO_FRAMES
        )

    async def _put(self, event: InputEvent) -> None:
        size = len(getattr(event, "data", b""))
        if self.spool.complete:
            async with self._room:
                await self._room.wait_for(lambda: self._queue.qsize() < QUEUE_LIMIT)
        else:
            self._queued_bytes += size
            if self._queued_bytes > self._max_audio_bytes:
                raise ResourceExhausted(
                    f"over {self._max_audio_bytes} bytes of audio arrived before the video "
                    "was complete: send the video ahead of or along with the audio",
                    field="audio",
                )
        await self._queue.put(event)

    async def events(self) -> AsyncIterator[InputEvent]:
        """The events after the video's first piece, less the video pieces."""
        while True:
            item = await self._queue.get()
            async with self._room:
                self._room.notify_all()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            self._queued_bytes = max(0, self._queued_bytes - len(getattr(item, "data", b"")))
            yield item

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.spool.close()
