"""The visual input of a generation: read it, decode it, find the face, fit it to the frame.

A still portrait (talking avatar) becomes one fitted picture plus its landmarks; a speaker
video (lipsync) becomes a store of fitted frames at the source's constant frame rate.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NoReturn

import cv2
import numpy as np
from opentelemetry import trace

from a2v_server.catalog import InputKind, OfferedModel
from a2v_server.domain import MIN_FPS, GenerateSpec, ImagePiece, InputEvent, VideoPiece
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.inference.backend import Backend, Face
from a2v_server.media.image import decode_image
from a2v_server.media.video import FrameStore, VideoUpload
from a2v_server.pipeline import framing
from a2v_server.pipeline.stats import StageClock
from a2v_server.settings import Settings

tracer = trace.get_tracer("a2v_server")

#: the picture is analysed at this size at most (landmarks are scaled back); when that finds no
#: face in a larger portrait, it is analysed again at full resolution in tiles of this size
ANALYSIS_SIDE = 1280
#: the tiles overlap by this much, so a face up to this wide lies whole in one of them (a wider
#: one is found by the downscaled pass in pictures up to ~6800 px on the long side)
TILE_OVERLAP = 320
#: the smallest face, in picture pixels (the width of dlib's box), that face_landmarks finds in a
#: picture of at most ANALYSIS_SIDE or in one tile of a larger one: the model detects on at most
#: 640 px, and dlib's HOG detector, upsampled once, finds faces down to ~28 px there. Measured
#: with skimage.data.astronaut() scaled down in a 1280 px canvas (tests/unit/test_visual.py):
#: found down to ~56 px, not at 52 px; smaller pictures do better (~28 px at 640 px or less)
SMALLEST_FACE = 60
#: the tiled pass drops a face scoring below this fraction of the best one, as face_landmarks
#: does within one picture (a weak detection next to a clear face is a false positive)
RELATIVE_SCORE = 0.25
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


async def _faces(
    backend: Backend, image: np.ndarray, clock: StageClock, *, tiled: bool = False
) -> list[Face]:
    """Faces in ``image``, in its own pixel coordinates, largest first.

    The picture is analysed downscaled to ANALYSIS_SIDE; with ``tiled``, a larger picture in
    which that finds no face is analysed again at full resolution, in overlapping tiles of
    ANALYSIS_SIDE (a small face in a large photo). That costs one analysis per tile, only when
    the first found nothing: 12 tiles for 4000x3000.
    """
    t = time.monotonic()
    analysis, factor = await asyncio.to_thread(_downscale, image, ANALYSIS_SIDE)
    clock.decode += time.monotonic() - t
    with tracer.start_as_current_span("inference.face_analysis") as span:
        t = time.monotonic()
        faces = await backend.analyze_faces(analysis)
        clock.inference += time.monotonic() - t
        span.set_attribute("a2v.faces", len(faces))
    if faces or not tiled or factor >= 1.0:
        return [_moved(f, 1 / factor, 0, 0) for f in faces]
    h, w = image.shape[:2]
    found: list[Face] = []
    with tracer.start_as_current_span("inference.face_analysis_tiled") as span:
        t = time.monotonic()
        windows = tiles(w, h)
        for x, y, tw, th in windows:
            tile = np.ascontiguousarray(image[y : y + th, x : x + tw])
            found += [_moved(f, 1.0, x, y) for f in await backend.analyze_faces(tile)]
        clock.inference += time.monotonic() - t
        faces = merge_faces(found)
        span.set_attribute("a2v.tiles", len(windows))
        span.set_attribute("a2v.faces", len(faces))
    return faces


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the tiles covering a picture: at most ANALYSIS_SIDE a side, overlapping
    by at least TILE_OVERLAP."""
    xs, ys = _starts(width), _starts(height)
    tw, th = min(width, ANALYSIS_SIDE), min(height, ANALYSIS_SIDE)
    return [(x, y, tw, th) for y in ys for x in xs]


def _starts(length: int) -> list[int]:
    if length <= ANALYSIS_SIDE:
        return [0]
    n = math.ceil((length - ANALYSIS_SIDE) / (ANALYSIS_SIDE - TILE_OVERLAP)) + 1
    return [round(i * (length - ANALYSIS_SIDE) / (n - 1)) for i in range(n)]


def merge_faces(faces: list[Face]) -> list[Face]:
    """Faces found in overlapping tiles, once each (the best-scoring of those that overlap),
    without weak detections next to a clear face; largest first."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if not any(_same_face(face.box, other.box) for other in kept):
            kept.append(face)
    if kept:
        best = kept[0].score
        kept = [f for f in kept if f.score >= RELATIVE_SCORE * best]
    return sorted(kept, key=lambda f: _area(f.box), reverse=True)


def _same_face(a, b) -> bool:
    """One face seen twice: the boxes share most of the smaller one (a face cut by a tile's
    edge is found as a part of the whole)."""
    smaller = min(_area(a), _area(b))
    return smaller > 0 and _overlap(a, b) >= 0.5 * smaller


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _moved(face: Face, scale: float, dx: float, dy: float) -> Face:
    """``face`` in another picture's coordinates: scaled, then shifted."""
    x0, y0, x1, y1 = face.box
    box = (x0 * scale + dx, y0 * scale + dy, x1 * scale + dx, y1 * scale + dy)
    shift = np.array([dx, dy], np.float32)
    marks = (np.asarray(face.landmarks, np.float32) * scale + shift).astype(np.float32)
    return Face(box, face.score, marks)


def _output_size(spec: GenerateSpec, src_wh: tuple[int, int]) -> tuple[int, int]:
    return framing.output_size(
        src_wh, aspect=spec.aspect, short_side=spec.short_side, size=spec.size
    )


def _layout(spec: GenerateSpec, src_wh: tuple[int, int], out_wh: tuple[int, int], box) -> tuple:
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
    out_wh = _output_size(spec, src_wh)
    check_pixel_rate(out_wh, spec.fps, spec, src_wh, settings, video=False)
    faces = await _faces(backend, image, clock, tiled=True)
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
            out_wh = _output_size(spec, (w, h))
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
                    face = _select(await _faces(backend, head[-1], clock), spec)
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


def check_pixel_rate(
    out_wh: tuple[int, int],
    fps: float,
    spec: GenerateSpec,
    src_wh: tuple[int, int],
    settings: Settings,
    *,
    video: bool,
) -> None:
    """Refuse an output of more pixels per second than ``max_output_pixel_rate``: rendering and
    encoding cost grows with it, whatever the size of the input."""
    limit = settings.max_output_pixel_rate
    w, h = out_wh
    if w * h * fps <= limit:
        return
    rate = f"{fps:g} fps" + (" (the video's frame rate)" if video else "")
    # The same shape: the explicit size's, or what the aspect (or source) gives.
    shape_wh, aspect = (spec.size, None) if spec.size is not None else (src_wh, spec.aspect)
    preset = framing.largest_preset_within(shape_wh, aspect, limit / fps)
    max_fps = math.floor(limit / (w * h) * 100) / 100  # rounded down: the number shown fits
    if video:
        slower = f"send the video at {max_fps:g} fps or less"
    else:
        slower = f"for at most {max_fps:g} fps at {w}x{h}" if max_fps >= MIN_FPS else ""
    fix = f"ask for {preset[0]}p or less" if preset is not None else ""
    if slower:
        fix = f"{fix}, or {slower}" if fix else ("ask " if not video else "") + slower
    fix = fix or "ask for a smaller resolution"
    raise ResourceExhausted(
        f"{w}x{h} at {rate} is {_mpx(w * h * fps)} Mpx/s of output, over the limit of "
        f"{_mpx(limit)} Mpx/s: {fix}",
        field="config.output.resolution",
    )


def _mpx(pixels_per_second: float) -> str:
    return f"{pixels_per_second / 1e6:.3g}"


class TempBudget:
    """The temporary disk of a lipsync video's fitted frames (``max_temp_bytes``): every source
    frame is stored at the output size, width x height x 3 bytes each."""

    def __init__(self, out_wh: tuple[int, int], fps: float, limit: int) -> None:
        self.out_wh = out_wh
        self.fps = fps
        self.limit = limit
        self.frame_bytes = out_wh[0] * out_wh[1] * 3
        #: the most frames that fit
        self.max_frames = limit // self.frame_bytes

    def check_count(self, count: int) -> None:
        """Refuse up front a video whose header says it has more frames than fit."""
        if count > self.max_frames:
            self._refuse(f"about {count}", _bytes(count * self.frame_bytes))

    def frames(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """``frames``, refused before the first one that would not fit."""
        for n, frame in enumerate(frames):
            if n >= self.max_frames:
                need = _bytes((n + 1) * self.frame_bytes)
                self._refuse(f"more than {self.max_frames}", f"more than {need}")
            yield frame

    def _refuse(self, count: str, need: str) -> NoReturn:
        w, h = self.out_wh
        if self.max_frames:
            fix = (
                f"send at most {self.max_frames} frames ({self.max_frames / self.fps:.1f} s at "
                f"{self.fps:g} fps), or ask for a smaller output size"
            )
        else:
            fix = "ask for a smaller output size"
        raise ResourceExhausted(
            f"the video has {count} frames; stored at the output size {w}x{h} they take "
            f"{need} of temporary disk, over the limit of "
            f"{_bytes(self.limit)}: {fix}",
            field="video",
        )


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


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
    factor = min(1.0, ANALYSIS_SIDE / max(w, h))
    if min(h, w) * factor < MIN_PICTURE_SIDE:  # not with the aspect limit above; kept as a guard
        raise InvalidInput(
            f"the {what} is {w}x{h} pixels, too narrow to analyse: crop it around the face",
            field=field,
        )


def _crop_hint(w: int, h: int, limit: float) -> str:
    if w > h:
        return f"{math.floor(h * limit)}x{h}"
    return f"{w}x{math.floor(w * limit)}"


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
