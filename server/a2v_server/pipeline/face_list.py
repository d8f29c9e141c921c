"""ListFaces: every face in a portrait, or followed through a whole speaker video, so that a
caller can say who speaks before a render. No gRPC here.

A video is decoded as it arrives (the same reader and decoder as lipsync's) and looked at
``SCAN_PER_SECOND`` times a second; each look finds the faces (``faces.find_faces``, largest
first) and follows them from the look before by the overlap of their boxes. Indices follow
FaceSelector: the faces of the first look with faces are 0, 1, ... largest first (the lipsync
model counts the same way in the frame where it first finds faces); faces that appear later
follow in the order they appear.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from a2v_server.domain import DetectedFace, EndOfInput, ImagePiece, InputEvent, VideoPiece
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.inference.backend import Backend, Face
from a2v_server.media.image import decode_image
from a2v_server.media.yuv import BT709, Converter
from a2v_server.pipeline.audio_input import next_or_missing_end, unexpected
from a2v_server.pipeline.faces import detected, find_faces
from a2v_server.pipeline.lipsync_frames import picture_rgb
from a2v_server.pipeline.pacing import ClientPace
from a2v_server.pipeline.stats import StageClock
from a2v_server.pipeline.video_input import VideoInput
from a2v_server.settings import Settings

#: looks per second of video
SCAN_PER_SECOND = 2.0
#: a face in one look is one seen lately (within FORGET_SECONDS) when their boxes overlap this
#: much (intersection over union)
SAME_FACE_IOU = 0.3
FORGET_SECONDS = 2.0


@dataclass(frozen=True)
class FaceList:
    faces: tuple[DetectedFace, ...]
    width: int
    height: int
    duration_seconds: float = 0.0
    frames_scanned: int = 0


@dataclass
class _Track:
    first: Face
    first_seconds: float
    last_box: tuple[float, float, float, float]
    last_seconds: float
    index: int
    looks: list[float] = field(default_factory=list)  # the times it was seen


@dataclass
class _Tracker:
    step_seconds: float
    tracks: list[_Track] = field(default_factory=list)

    def look(self, faces: list[Face], seconds: float) -> None:
        """The faces (largest first) of the look at ``seconds``: each is the face seen lately
        (within FORGET_SECONDS) whose last box it overlaps most, or a new one."""
        recent = [t for t in self.tracks if seconds - t.last_seconds <= FORGET_SECONDS]
        for face in faces:
            best = max(recent, key=lambda t: _iou(t.last_box, face.box), default=None)
            if best is not None and _iou(best.last_box, face.box) >= SAME_FACE_IOU:
                recent.remove(best)
                best.last_box, best.last_seconds = face.box, seconds
                best.looks.append(seconds)
            else:  # new: numbered in order of appearance, largest first within a look
                track = _Track(face, seconds, face.box, seconds, len(self.tracks), [seconds])
                self.tracks.append(track)

    def faces(self, duration: float | None = None) -> tuple[DetectedFace, ...]:
        """The faces seen; each look stands for the time until the next (or the video's
        ``duration``)."""
        end = float("inf") if duration is None else duration
        return tuple(
            DetectedFace(
                index=t.index,
                box=t.first.box,
                score=min(1.0, max(0.0, t.first.score)),
                first_seconds=t.first_seconds,
                last_seconds=t.last_seconds,
                visible_seconds=sum(min(self.step_seconds, end - s) for s in t.looks),
            )
            for t in self.tracks
        )


async def list_faces(
    inputs: AsyncIterator[InputEvent], backend: Backend, settings: Settings
) -> FaceList:
    inputs = ClientPace(settings).events(inputs)
    first = await next_or_missing_end(inputs)
    clock = StageClock()
    if isinstance(first, ImagePiece):
        data = await _image(first, inputs, settings)
        image = await asyncio.to_thread(decode_image, data, max_pixels=settings.max_image_pixels)
        faces = await find_faces(backend, image, clock, tiled=True)
        h, w = image.shape[:2]
        return FaceList(detected(faces), w, h)
    if not isinstance(first, VideoPiece):
        if isinstance(first, EndOfInput):
            raise InvalidInput(
                "the picture is missing: send an image or a video before the end message",
                field="image",
            )
        unexpected(first, "an image or a video")
    return await _video_faces(first, inputs, backend, settings, clock)


async def _video_faces(
    first: VideoPiece,
    inputs: AsyncIterator[InputEvent],
    backend: Backend,
    settings: Settings,
    clock: StageClock,
) -> FaceList:
    async def events() -> AsyncIterator[InputEvent]:
        yield first
        async for event in inputs:
            yield event

    reader = VideoInput(events(), "ListFaces", settings)
    rest = asyncio.ensure_future(_no_more(reader))
    video = None
    try:
        video = await reader.source()
        info = await asyncio.to_thread(video.open)
        rate = float(info.rate)
        step = max(1, round(rate / SCAN_PER_SECOND))
        tracker = _Tracker(step / rate)
        converter = Converter(info.colour or BT709)
        slot = 0
        looks = 0
        while (picture := await asyncio.to_thread(video.frame, slot)) is not None:
            rgb = await asyncio.to_thread(picture_rgb, picture, converter)
            tracker.look(await find_faces(backend, rgb, clock), slot / rate)
            looks += 1
            slot += step
        await rest  # the end message, and nothing after it
        slots = video.length or slot
        duration = slots / rate
        return FaceList(tracker.faces(duration), info.width, info.height, duration, looks)
    finally:
        rest.cancel()
        await asyncio.gather(rest, return_exceptions=True)
        if video is not None:
            video.close()
        reader.spool.abort()
        await reader.aclose()


async def _image(first: ImagePiece, inputs: AsyncIterator[InputEvent], settings: Settings) -> bytes:
    pieces, size = [first.data], len(first.data)
    while not isinstance(event := await next_or_missing_end(inputs), EndOfInput):
        if not isinstance(event, ImagePiece):
            unexpected(event, "the image")
        size += len(event.data)
        if size > settings.max_image_bytes:
            raise ResourceExhausted(
                f"the image is larger than {settings.max_image_bytes} bytes: send a smaller file",
                field="image",
            )
        pieces.append(event.data)
    async for extra in inputs:
        unexpected(extra, "nothing after the end message")
    return b"".join(pieces)


async def _no_more(reader: VideoInput) -> None:
    """After the video: the end message, and nothing else."""
    ended = False
    async for event in reader.events():
        if isinstance(event, EndOfInput) and not ended:
            ended = True
            continue
        unexpected(event, "nothing but the end message after the video")
    if not ended:
        await next_or_missing_end(_nothing())


async def _nothing() -> AsyncIterator[InputEvent]:
    return
    yield


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
