"""The visual input of a generation: read it, decode it, find the face, fit it to the frame.

A still portrait (talking avatar) becomes one fitted picture plus its landmarks; a speaker
video (lipsync) becomes a store of fitted frames at the source's constant frame rate. The face
search is faces.py's, the output pixel rate and temporary-disk limits budget.py's, the fitting
framing.py's; this module reads the input, checks its pictures and puts those together.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from opentelemetry import trace

from a2v_server.catalog import InputKind, OfferedModel
from a2v_server.domain import GenerateSpec, ImagePiece, InputEvent, VideoPiece
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.inference.backend import Backend
from a2v_server.media.image import decode_image
from a2v_server.media.video import FrameStore, VideoUpload
from a2v_server.pipeline import framing
from a2v_server.pipeline.budget import TempBudget, check_pixel_rate
from a2v_server.pipeline.faces import SMALLEST_FACE, find_faces, moved_mesh, select_face
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

tracer = trace.get_tracer("a2v_server")

#: lipsync: a video may hold at most this many frames (10 minutes at 60 fps)
MAX_VIDEO_FRAMES = 36_000
#: lipsync framing: look for a face in the first PROBE_FRAMES frames, every PROBE_EVERY-th, in at
#: most PROBE_BYTES of decoded frames (they are held until the face is found)
PROBE_FRAMES = 30
PROBE_EVERY = 3
PROBE_BYTES = 256 * 1024 * 1024
#: the face models refuse smaller pictures (also after the downscale for analysis)
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
    #: ... and its dense face mesh (478, 3) mapped the same way (None without one)
    mesh: np.ndarray | None = None
    #: lipsync: the fitted frames, and the caller's face box mapped to output pixels
    frames: FrameStore | None = None
    face_select_box: tuple[float, float, float, float] | None = None

    def close(self) -> None:
        """Free the pixels now: a finished generation's frames may outlive it for a while
        (exceptions' tracebacks keep them), and must not keep the images with them."""
        if self.frames is not None:
            self.frames.close()
        self.portrait = self.landmarks = self.mesh = self.frames = None


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


def _source_size(spec: GenerateSpec, *, video: bool) -> bool:
    """Whether the output keeps the visual input's size: asked for (SOURCE), or lipsync's
    default (a speaker video whose pixels should stay the user's, only the mouth changed)."""
    return spec.source_size or (video and spec.short_side is None and spec.size is None)


def _output_size(spec: GenerateSpec, src_wh: tuple[int, int], *, video: bool) -> tuple[int, int]:
    if _source_size(spec, video=video):
        return framing.source_output_size(src_wh, spec.aspect)
    return framing.output_size(
        src_wh, aspect=spec.aspect, short_side=spec.short_side, size=spec.size
    )


def _layout(spec: GenerateSpec, src_wh: tuple[int, int], out_wh: tuple[int, int], box) -> tuple:
    if framing.is_source_crop(src_wh, out_wh):
        placement = framing.SOURCE_PLACEMENT  # the source as it is: nothing to fit
    else:
        placement = framing.place(src_wh, out_wh, box, spec.fit)
    out_box = placement.points(np.array(box, dtype=np.float64).reshape(2, 2)).ravel()
    return placement, tuple(float(v) for v in out_box)


async def prepare_portrait(
    data: bytes, spec: GenerateSpec, backend: Backend, settings: Settings, clock: StageClock
) -> Visual:
    with tracer.start_as_current_span("decode.image"):
        t = time.monotonic()
        image = await asyncio.to_thread(decode_image, data, max_pixels=settings.max_image_pixels)
        clock.decode += time.monotonic() - t
    _check_picture_size(image, "portrait", "image")
    src_wh = (image.shape[1], image.shape[0])
    out_wh = _output_size(spec, src_wh, video=False)
    check_pixel_rate(out_wh, spec.fps, spec, src_wh, settings, video=False)
    faces = await find_faces(backend, image, clock, tiled=True)
    if not faces:
        raise InvalidInput(
            "no face found in the portrait: send a photo in which one face is clearly "
            f"visible, roughly frontal and at least {SMALLEST_FACE} pixels wide",
            field="image",
        )
    face = faces[0]  # largest first
    placement, out_box = _layout(spec, src_wh, out_wh, face.box)
    shown = out_box[2] - out_box[0]
    if shown < framing.MIN_FACE_PIXELS:  # only with pad: crop zooms in on a small face
        raise InvalidInput(
            f"the face is {face.box[2] - face.box[0]:.0f} pixels wide in the {src_wh[0]}x"
            f"{src_wh[1]} portrait and would be {shown:.0f} in the {out_wh[0]}x{out_wh[1]} "
            f"output, too small to animate (at least {framing.MIN_FACE_PIXELS}): use fit crop, "
            "which zooms in on the face, or a larger resolution",
            field="config.output.fit",
        )
    fitted = await asyncio.to_thread(framing.render_fitted, image, placement, out_wh)
    return Visual(
        width=out_wh[0],
        height=out_wh[1],
        fps=spec.fps,
        face_box=out_box,
        portrait=fitted,
        landmarks=placement.points(face.landmarks),
        mesh=moved_mesh(face.mesh, placement.scale, placement.dx, placement.dy),
    )


async def prepare_video(
    upload: VideoUpload,
    spec: GenerateSpec,
    backend: Backend,
    settings: Settings,
    clock: StageClock,
) -> Visual:
    """Decode the speaker video once into fitted frames at its own constant frame rate.

    The output size and rate are known from the first frame and the stream's header: the
    output pixel rate and the temporary disk the fitted frames need are checked then, before
    any face analysis, and again as frames are stored (a header may understate the length).
    """
    try:
        with tracer.start_as_current_span("decode.video") as span:
            t = time.monotonic()
            rate, count, frames = await asyncio.to_thread(
                upload.frames, max_frames=MAX_VIDEO_FRAMES, max_pixels=settings.max_image_pixels
            )
            first = await asyncio.to_thread(next, frames, None)
            clock.decode += time.monotonic() - t
            if first is None:
                raise InvalidInput("the video contains no frames", field="video")
            _check_picture_size(first, "video", "video")
            h, w = first.shape[:2]
            out_wh = _output_size(spec, (w, h), video=True)
            limit = settings.max_output_pixel_rate / float(rate)
            default = _source_size(spec, video=True) and not spec.source_size
            if default and out_wh[0] * out_wh[1] > limit:
                # Lipsync's default (the source's size) over the pixel rate: the largest preset
                # within it instead. Asked for explicitly, SOURCE is refused below, with a fix.
                within = framing.largest_preset_within((w, h), spec.aspect, limit)
                out_wh = within[1] if within is not None else out_wh
            check_pixel_rate(out_wh, float(rate), spec, (w, h), settings, video=True)
            budget = TempBudget(out_wh, float(rate), settings.max_temp_bytes)
            if count:
                budget.check_count(count)
            # Frame the face: look for it in the first frames (a clip may open on a title
            # card or a cutaway); those frames are kept and stored like the rest.
            head: list[np.ndarray] = [first]
            face = None
            while True:
                if (len(head) - 1) % PROBE_EVERY == 0:
                    face = select_face(await find_faces(backend, head[-1], clock), spec)
                    if face is not None:
                        break
                if len(head) >= PROBE_FRAMES or len(head) * first.nbytes >= PROBE_BYTES:
                    break
                t = time.monotonic()
                frame = await asyncio.to_thread(next, frames, None)
                clock.decode += time.monotonic() - t
                if frame is None:
                    break
                head.append(frame)
            # No face in the first frames: frame the centre; frames without a face pass through.
            box = face.box if face is not None else (w * 0.3, h * 0.2, w * 0.7, h * 0.6)
            placement, out_box = _layout(spec, (w, h), out_wh, box)
            store = FrameStore((out_wh[1], out_wh[0]))
            t = time.monotonic()
            try:
                await asyncio.to_thread(
                    store.fill,
                    budget.frames(itertools.chain(head, frames)),
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
    """The face models need a picture of some size and shape; say so before anything goes to
    the model (instead of its tensor-shape error)."""
    h, w = picture.shape[:2]
    if min(h, w) < MIN_PICTURE_SIDE:
        raise InvalidInput(
            f"the {what} is {w}x{h} pixels, too small to hold a face: send at least "
            f"{MIN_PICTURE_SIDE}x{MIN_PICTURE_SIDE} (a face needs about {SMALLEST_FACE} pixels)",
            field=field,
        )
    aspect = max(w, h) / min(w, h)
    if aspect > framing.MAX_SOURCE_ASPECT:
        limit = framing.MAX_SOURCE_ASPECT
        raise InvalidInput(
            f"the {what} is {w}x{h} pixels, {aspect:.3g} times as {'wide' if w > h else 'tall'} "
            f"as it is {'tall' if w > h else 'wide'}; the limit is {limit:g}:1: crop it "
            f"around the face (to at most {_crop_hint(w, h, limit)})",
            field=field,
        )


def _crop_hint(w: int, h: int, limit: float) -> str:
    if w > h:
        return f"{math.floor(h * limit)}x{h}"
    return f"{w}x{math.floor(w * limit)}"
