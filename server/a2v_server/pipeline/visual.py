"""The visual input of a generation: read it, decode it, find the face, fit it to the frame.

A still portrait (talking avatar) becomes one fitted picture plus its landmarks; a speaker
video (lipsync) becomes a store of fitted frames at the source's constant frame rate.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import cv2
import numpy as np
from opentelemetry import trace

from a2v_server.catalog import InputKind, OfferedModel
from a2v_server.domain import GenerateSpec, ImagePiece, InputEvent, VideoPiece
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.inference.backend import Backend, Face
from a2v_server.media.image import decode_image
from a2v_server.media.video import FrameStore, VideoUpload
from a2v_server.pipeline import framing
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

tracer = trace.get_tracer("a2v_server")

#: the picture is analysed at this size at most (landmarks are scaled back)
ANALYSIS_SIDE = 1280
#: lipsync: a video may hold at most this many frames (10 minutes at 60 fps)
MAX_VIDEO_FRAMES = 36_000
#: lipsync framing: look for a face in the first PROBE_FRAMES frames, every PROBE_EVERY-th
PROBE_FRAMES = 30
PROBE_EVERY = 3
#: the face models refuse smaller pictures
MIN_PICTURE_SIDE = 16


@dataclass
class Visual:
    """A prepared visual input."""

    width: int
    height: int
    fps: float
    #: where the face is in the output frame (x0, y0, x1, y1)
    face_box: tuple[float, float, float, float]
    #: talking avatar: the fitted portrait and its landmarks
    portrait: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    #: lipsync: the fitted frames, and the caller's face box mapped to output pixels
    frames: FrameStore | None = None
    face_select_box: tuple[float, float, float, float] | None = None

    def close(self) -> None:
        """Free the pixels now: a finished generation's frames may outlive it for a while
        (exceptions' tracebacks keep them), and must not keep the images with them."""
        if self.frames is not None:
            self.frames.close()
        self.portrait = self.landmarks = self.frames = None


async def read_visual(
    inputs: AsyncIterator[InputEvent], model: OfferedModel, settings: Settings
) -> tuple[bytes | VideoUpload, InputEvent]:
    """Collect the image (or video) pieces; returns them and the first event after them."""
    wants_video = InputKind.VIDEO in model.inputs
    pieces: list[bytes] = []
    size = 0
    upload = VideoUpload(settings.max_video_bytes) if wants_video else None
    try:
        async for event in inputs:
            if isinstance(event, VideoPiece) and upload is not None:
                upload.write(event.data)
                continue
            if isinstance(event, ImagePiece) and upload is None:
                size += len(event.data)
                if size > settings.max_image_bytes:
                    raise ResourceExhausted(
                        f"the image is larger than {settings.max_image_bytes} bytes: send a "
                        "smaller file (a portrait needs no more than 4096 px per side)",
                        field="image",
                    )
                pieces.append(event.data)
                continue
            if isinstance(event, VideoPiece):
                raise InvalidInput(
                    f"model {model.name} takes a still image, not a video: send the portrait "
                    "as an image message (or choose the lipsync model)",
                    field="video",
                )
            if isinstance(event, ImagePiece):
                raise InvalidInput(
                    f"model {model.name} takes a video of a speaker, not an image: send video "
                    "messages (or choose the talking_avatar model)",
                    field="image",
                )
            if upload is not None and upload.size == 0:
                raise InvalidInput(
                    "the speaker video is missing: send video messages (MP4, MOV or WebM) "
                    "after the config and before the audio",
                    field="video",
                )
            if upload is None and not pieces:
                raise InvalidInput(
                    "the portrait is missing: send an image message (PNG, JPEG or WebP) after "
                    "the config and before the audio",
                    field="image",
                )
            return (upload if upload is not None else b"".join(pieces)), event
    except BaseException:
        if upload is not None:
            upload.close()
        raise
    if upload is not None:
        upload.close()
    raise InvalidInput(
        "the input ended before any audio: send audio messages and then an end message",
        field="audio",
    )


async def _faces(backend: Backend, image: np.ndarray, clock: StageClock) -> list[Face]:
    """Faces in ``image``, in its own pixel coordinates."""
    t = time.monotonic()
    analysis, factor = await asyncio.to_thread(_downscale, image, ANALYSIS_SIDE)
    clock.decode += time.monotonic() - t
    with tracer.start_as_current_span("inference.face_analysis") as span:
        t = time.monotonic()
        faces = await backend.analyze_faces(analysis)
        clock.inference += time.monotonic() - t
        span.set_attribute("a2v.faces", len(faces))
    return [
        Face(tuple(v / factor for v in f.box), f.score, f.landmarks / factor)  # type: ignore[arg-type]
        for f in faces
    ]


def _layout(spec: GenerateSpec, src_wh: tuple[int, int], box) -> tuple:
    out_wh = framing.output_size(
        src_wh, aspect=spec.aspect, short_side=spec.short_side, size=spec.size
    )
    placement = framing.place(src_wh, out_wh, box, spec.fit)
    out_box = placement.points(np.array(box, dtype=np.float64).reshape(2, 2)).ravel()
    return out_wh, placement, tuple(float(v) for v in out_box)


async def prepare_portrait(
    data: bytes, spec: GenerateSpec, backend: Backend, settings: Settings, clock: StageClock
) -> Visual:
    with tracer.start_as_current_span("decode.image"):
        t = time.monotonic()
        image = await asyncio.to_thread(decode_image, data, max_pixels=settings.max_image_pixels)
        clock.decode += time.monotonic() - t
    _check_picture_size(image, "portrait", "image")
    faces = await _faces(backend, image, clock)
    if not faces:
        raise InvalidInput(
            "no face found in the portrait: send a photo in which one face is clearly "
            "visible, roughly frontal and at least 40 pixels wide",
            field="image",
        )
    face = faces[0]  # largest first
    out_wh, placement, out_box = _layout(spec, (image.shape[1], image.shape[0]), face.box)
    fitted = await asyncio.to_thread(framing.render_fitted, image, placement, out_wh)
    return Visual(
        width=out_wh[0],
        height=out_wh[1],
        fps=spec.fps,
        face_box=out_box,
        portrait=fitted,
        landmarks=placement.points(face.landmarks),
    )


async def prepare_video(
    upload: VideoUpload,
    spec: GenerateSpec,
    backend: Backend,
    settings: Settings,
    clock: StageClock,
) -> Visual:
    """Decode the speaker video once into fitted frames at its own constant frame rate."""
    try:
        with tracer.start_as_current_span("decode.video") as span:
            t = time.monotonic()
            rate, _, frames = await asyncio.to_thread(
                upload.frames, max_frames=MAX_VIDEO_FRAMES, max_pixels=settings.max_image_pixels
            )
            # Frame the face: look for it in the first frames (a clip may open on a title
            # card or a cutaway); those frames are kept and stored like the rest.
            head: list[np.ndarray] = []
            face = None
            while len(head) < PROBE_FRAMES:
                frame = await asyncio.to_thread(next, frames, None)
                if frame is None:
                    break
                if not head:
                    _check_picture_size(frame, "video", "video")
                head.append(frame)
                if (len(head) - 1) % PROBE_EVERY == 0:
                    clock.decode += time.monotonic() - t
                    face = _select(await _faces(backend, frame, clock), spec)
                    t = time.monotonic()
                    if face is not None:
                        break
            clock.decode += time.monotonic() - t
            if not head:
                raise InvalidInput("the video contains no frames", field="video")
            first = head[0]
            h, w = first.shape[:2]
            # No face in the first frame: frame the centre; frames without a face pass through.
            box = face.box if face is not None else (w * 0.3, h * 0.2, w * 0.7, h * 0.6)
            out_wh, placement, out_box = _layout(spec, (w, h), box)
            store = FrameStore((out_wh[1], out_wh[0]))
            t = time.monotonic()
            try:
                await asyncio.to_thread(
                    store.fill,
                    itertools.chain(head, frames),
                    lambda f: framing.render_fitted(f, placement, out_wh),
                )
            except BaseException:
                store.close()
                raise
            clock.decode += time.monotonic() - t
            span.set_attribute("a2v.video_frames", store.count)
    finally:
        upload.close()
    select_box = None
    if spec.face_box is not None:
        (x0, y0), (x1, y1) = placement.points(np.array(spec.face_box).reshape(2, 2))
        select_box = (float(x0), float(y0), float(x1), float(y1))
    return Visual(
        width=out_wh[0],
        height=out_wh[1],
        fps=float(rate),
        face_box=out_box,
        frames=store,
        face_select_box=select_box,
    )


def _check_picture_size(picture: np.ndarray, what: str, field: str) -> None:
    """The face models need a picture of some size; say so instead of a tensor-shape error."""
    h, w = picture.shape[:2]
    if min(h, w) < MIN_PICTURE_SIDE:
        raise InvalidInput(
            f"the {what} is {w}x{h} pixels, too small to hold a face: send at least "
            f"{MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE} (a face needs about 40 pixels)",
            field=field,
        )


def _select(faces: list[Face], spec: GenerateSpec) -> Face | None:
    if not faces:
        return None
    if spec.face_box is not None:
        return max(faces, key=lambda f: _overlap(f.box, spec.face_box))
    return faces[spec.face_index] if spec.face_index < len(faces) else None


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    factor = min(1.0, side / max(image.shape[:2]))
    if factor >= 1.0:
        return image, 1.0
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, factor
