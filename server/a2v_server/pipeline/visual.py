"""The visual input of a generation: read it, decode it, find the face, fit it to the frame.

A still portrait (talking avatar) becomes one fitted picture plus its landmarks; a speaker
video (lipsync) becomes a source of output frames decoded on demand at the source's constant
frame rate (lipsync_frames.py), opened on its first frames while the rest still arrives. The
face search is faces.py's, the output pixel rate limit budget.py's, the fitting framing.py's;
this module reads the input, checks its pictures and puts those together.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from opentelemetry import trace

from a2v_server.catalog import OfferedModel
from a2v_server.domain import (
    MAX_FPS,
    DetectedFace,
    GenerateSpec,
    ImagePiece,
    InputEvent,
    Speaker,
    VideoPiece,
)
from a2v_server.errors import InvalidInput, ResourceExhausted, Unavailable
from a2v_server.inference.backend import Backend
from a2v_server.media.image import decode_image
from a2v_server.media.spool import SpoolAborted
from a2v_server.media.video import SourceVideo, VideoInfo
from a2v_server.media.yuv import BT709, Converter
from a2v_server.pipeline import framing
from a2v_server.pipeline.budget import check_pixel_rate
from a2v_server.pipeline.faces import (
    ANALYSIS_SIDE,
    SMALLEST_FACE,
    detected,
    find_faces,
    moved_mesh,
    scaled_faces,
    select_face,
)
from a2v_server.pipeline.lipsync_frames import (
    FaceWindow,
    FittedSource,
    InFlight,
    LipsyncFrames,
    picture_rgb,
)
from a2v_server.pipeline.stats import StageClock
from a2v_server.pipeline.video_input import VideoInput
from a2v_server.settings import Settings

tracer = trace.get_tracer("a2v_server")

#: lipsync framing: look for a face in the first PROBE_FRAMES frames, every PROBE_EVERY-th
PROBE_FRAMES = 30
PROBE_EVERY = 3
#: ... the first of them analysed at faces.ANALYSIS_SIDE, the later ones (they matter where a
#: video opens without a face: a title card, a cutaway) downscaled to PROBE_SIDE, at which the
#: face model searches no tiles (face_mesh._TILE_ABOVE): a picture without a face costs it
#: ~90 ms at 720p with its tiles, ~10 ms without, and a video opening on a title card waited
#: 1.1-1.6 s for its first chunk, ten such analyses. A face a tenth of the picture wide or
#: larger is still found; a smaller one is the model's to find (it searches whole frames,
#: tiles included, while it has no face), only the framing of a reframed output misses it.
PROBE_SIDE = 480
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
    #: lipsync: the source's frames, and the caller's face box mapped to output pixels
    lipsync: LipsyncFrames | None = None
    face_select_box: tuple[float, float, float, float] | None = None
    #: talking avatar: the portrait's face detection score (its tracking confidence)
    face_score: float = 1.0
    #: every face found (Accepted.faces): the portrait's, or a video's first frame with faces
    faces: tuple[DetectedFace, ...] = ()
    #: Accepted.warnings about the input ("field: why"), e.g. a video above MAX_FPS
    warnings: tuple[str, ...] = ()
    #: several speakers: the talking avatar's speaking faces (landmarks, mesh) in output
    #: pixels; lipsync's face boxes (output pixels, None: by index), one per speaker
    speaker_faces: tuple[tuple[np.ndarray, np.ndarray | None], ...] = ()
    speaker_boxes: tuple[tuple[float, float, float, float] | None, ...] = ()

    def close(self) -> None:
        """Free the pixels now: a finished generation's frames may outlive it for a while
        (exceptions' tracebacks keep them), and must not keep the images with them."""
        if self.lipsync is not None:
            self.lipsync.close()
        self.portrait = self.landmarks = self.mesh = self.lipsync = None


async def read_visual(
    inputs: AsyncIterator[InputEvent], model: OfferedModel, settings: Settings
) -> tuple[bytes, InputEvent]:
    """Collect the portrait's pieces; returns them and the first event after them. (A speaker
    video is read by video_input.VideoInput instead, while it is being decoded.)"""
    pieces: list[bytes] = []
    size = 0
    async for event in inputs:
        if isinstance(event, ImagePiece):
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


def _layout(
    spec: GenerateSpec,
    src_wh: tuple[int, int],
    out_wh: tuple[int, int],
    box,
    *,
    whole: bool = False,
) -> tuple:
    """(placement, the face ``box`` in the output); ``whole``: the whole source, scaled (the
    user's framing, not one cropped around the face)."""
    if framing.is_source_crop(src_wh, out_wh):
        placement = framing.SOURCE_PLACEMENT  # the source as it is: nothing to fit
    else:
        placement = framing.place(src_wh, out_wh, box, "pad" if whole else spec.fit)
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
    speaking = [face]
    if spec.speakers:  # several speakers: each names a face of the portrait
        speaking = [_speaker_face(faces, s, n) for n, s in enumerate(spec.speakers)]
        face = speaking[0]
    # the framing keeps every speaking face in the picture
    union = (
        min(f.box[0] for f in speaking),
        min(f.box[1] for f in speaking),
        max(f.box[2] for f in speaking),
        max(f.box[3] for f in speaking),
    )
    placement, out_box = _layout(spec, src_wh, out_wh, union)
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
        face_score=min(1.0, max(0.0, face.score)),
        faces=detected(faces),
        speaker_faces=tuple(
            (
                placement.points(f.landmarks),
                moved_mesh(f.mesh, placement.scale, placement.dx, placement.dy),
            )
            for f in speaking
        )
        if spec.speakers
        else (),
    )


def _speaker_face(faces: list, speaker: Speaker, n: int):
    """The portrait's face a speaker names (by box or index), or INVALID_ARGUMENT."""
    chosen = select_face(faces, speaker.face_index, speaker.face_box)
    if chosen is None:
        raise InvalidInput(
            f"speaker {n} names face {speaker.face_index}, but the portrait shows "
            f"{len(faces)} face(s) (indices 0 to {len(faces) - 1}: see Accepted.faces or "
            "a2v faces --image)",
            field="config.speakers",
        )
    return chosen


async def prepare_video(
    video_input: VideoInput,
    spec: GenerateSpec,
    backend: Backend,
    settings: Settings,
    clock: StageClock,
) -> Visual:
    """Open the speaker video on its first frames (the rest may still be arriving), find the
    face in them, and set up the output frames at the video's own constant frame rate.

    The output size and rate are known from the first frame and the stream's header: the
    output pixel rate is checked then, before any face analysis.
    """
    video = await video_input.source()
    try:
        with tracer.start_as_current_span("decode.video"):
            t = time.monotonic()
            info = await _waiting_for_bytes(video_input, asyncio.to_thread(video.open))
            clock.decode += time.monotonic() - t
            w, h = info.width, info.height
            _check_size(w, h, "video", "video")
            rate = info.rate
            out_wh = _output_size(spec, (w, h), video=True)
            limit = settings.max_output_pixel_rate / float(rate)
            default = _source_size(spec, video=True) and not spec.source_size
            scaled_source = False  # the output is the whole source, scaled down
            if default and out_wh[0] * out_wh[1] > limit:
                # Lipsync's default (the source's size) over the pixel rate: the largest preset
                # within it instead. Asked for explicitly, SOURCE is refused below, with a fix.
                within = framing.largest_preset_within((w, h), spec.aspect, limit)
                out_wh = within[1] if within is not None else out_wh
                scaled_source = within is not None and spec.aspect is None
            check_pixel_rate(out_wh, float(rate), spec, (w, h), settings, video=True)
            # The user's video scaled to fit the budget (a 4K phone video, a 1080p clip) keeps
            # its framing, so its size is known before the face: decoded at it from the first
            # pictures on, the face probe's too (at 4K the probe's pictures cost more than
            # the rest of the first chunk). Faces are found in those pictures and reported
            # in the source's pixels.
            probe_scale = 1.0
            if scaled_source and isinstance(video, SourceVideo):
                t = time.monotonic()
                small = await asyncio.to_thread(video.decode_at, *out_wh)
                clock.decode += time.monotonic() - t
                probe_scale = small.width / w
            # Frame the face: look for it in the first frames (a clip may open on a title
            # card or a cutaway); the frames decoded meanwhile stay cached for the render.
            converter = Converter(info.colour or BT709)
            face = None
            found: tuple[DetectedFace, ...] = ()
            for k in range(0, PROBE_FRAMES, PROBE_EVERY):
                t = time.monotonic()
                picture = await _waiting_for_bytes(video_input, asyncio.to_thread(video.frame, k))
                clock.decode += time.monotonic() - t
                if picture is None:
                    break
                rgb = await asyncio.to_thread(picture_rgb, picture, converter)
                side = ANALYSIS_SIDE if k == 0 else PROBE_SIDE
                faces = scaled_faces(await find_faces(backend, rgb, clock, side=side), probe_scale)
                found = found or detected(faces, k / float(rate))
                face = select_face(faces, spec.face_index, spec.face_box)
                if face is not None:
                    break
    except BaseException:
        video.close()
        raise
    # No face in the first frames: frame the centre; frames without a face pass through.
    box = face.box if face is not None else (w * 0.3, h * 0.2, w * 0.7, h * 0.6)
    placement, out_box = _layout(spec, (w, h), out_wh, box, whole=scaled_source)
    select_box = _to_output(placement, spec.face_box)
    speaker_boxes = tuple(_to_output(placement, s.face_box) for s in spec.speakers)
    if spec.speakers and found:
        for n, s in enumerate(spec.speakers):
            if s.face_box is None and s.face_index >= len(found):
                raise InvalidInput(
                    f"speaker {n} names face {s.face_index}, but the video's first frame with "
                    f"faces shows {len(found)} (indices 0 to {len(found) - 1}: see "
                    "Accepted.faces or a2v faces --video); name a later face by its box",
                    field="config.speakers",
                )
    fitted_placement = placement
    if isinstance(video, SourceVideo) and placement.scale < 1:
        # A source larger than its output is decoded at the output's scale (a 4K phone video
        # under a 1080p output): the pictures are fitted from there, the same output framed
        # the same way, at a quarter of the pixels to convert and cache.
        dw, dh = round(w * placement.scale), round(h * placement.scale)
        if scaled_source:
            dw, dh = out_wh  # (decoded at it already, before the probe)
        small = await asyncio.to_thread(video.decode_at, dw, dh)
        sx, sy = small.width / w, small.height / h
        fitted_placement, _ = _layout(
            spec,
            (small.width, small.height),
            out_wh,
            (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy),
            whole=scaled_source,
        )
    frames = LipsyncFrames(
        FittedSource(video, fitted_placement, out_wh),
        # several speakers: every stream gets whole frames (each follows a face of its own)
        FaceWindow(out_wh, out_box if face is not None and not spec.speakers else None),
        InFlight(out_wh, float(rate)),
    )
    return Visual(
        width=out_wh[0],
        height=out_wh[1],
        fps=float(rate),
        face_box=out_box,
        lipsync=frames,
        face_select_box=select_box,
        faces=found,
        speaker_boxes=speaker_boxes,
        warnings=_rate_warning(info)
        + _hdr_warning(info)
        + _pixel_warning(info)
        + _interlace_warning(info)
        + _sampling_warning(info),
    )


def _rate_warning(info: VideoInfo) -> tuple[str, ...]:
    """Accepted.warnings' entry for a video above MAX_FPS (media/video.py plays it lower)."""
    if info.source_rate is None:
        return ()
    step = round(info.source_rate / info.rate)
    return (
        f"video: its frame rate, {float(info.source_rate):.4g} fps, is above {MAX_FPS}: the clip "
        f"is at {float(info.rate):.4g} fps, every {_ordinal(step)} picture",
    )


def _hdr_warning(info: VideoInfo) -> tuple[str, ...]:
    """Accepted.warnings' entry for an HDR or wide-gamut video (media/video.py converts it)."""
    if info.hdr is None:
        return ()
    kind = "wide-gamut (BT.2020)" if info.hdr == "BT.2020" else f"HDR ({info.hdr})"
    return (
        f"video: it is {kind}; the clip is SDR BT.709 (8-bit H.264), its colours converted as "
        "an SDR screen shows them, which takes longer than an SDR video",
    )


def _pixel_warning(info: VideoInfo) -> tuple[str, ...]:
    """Accepted.warnings' entry for a video of non-square pixels (media/video.py shows it in
    square ones): the output's pixels cannot be the source's."""
    if info.non_square is None:
        return ()
    sar, (width, height) = info.non_square
    return (
        f"video: its pixels are not square (sample aspect ratio {sar.numerator}:"
        f"{sar.denominator}, {width}x{height} stored): the clip is made from it as players show "
        "it, in square pixels",
    )


def _interlace_warning(info: VideoInfo) -> tuple[str, ...]:
    """Accepted.warnings' entry for an interlaced video (media/video.Deinterlacer): the
    output's pixels are the deinterlaced pictures, not the woven fields."""
    if not info.interlaced:
        return ()
    return (
        "video: it is interlaced; the clip is progressive, deinterlaced as a player shows it "
        "(the same frame rate: one picture per frame)",
    )


def _sampling_warning(info: VideoInfo) -> tuple[str, ...]:
    """Accepted.warnings' entry for a video whose samples cannot pass as they are
    (media/yuv.converted_colour): the clip's are 8-bit 4:2:0 limited range."""
    if info.converted is None:
        return ()
    return (
        f"video: it is {info.converted}; the clip is 8-bit 4:2:0 limited-range H.264, what "
        "browsers and players take: every picture is converted, not only the mouth",
    )


def _ordinal(n: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _to_output(placement, box) -> tuple[float, float, float, float] | None:
    """A box in the input's pixels, in the output's."""
    if box is None:
        return None
    (x0, y0), (x1, y1) = placement.points(np.array(box).reshape(2, 2))
    return float(x0), float(y0), float(x1), float(y1)


async def _waiting_for_bytes(video_input: VideoInput, work):
    """``work`` (a coroutine that reads the spool); when the input reader failed meanwhile (the
    spool was aborted), its error, which says what was wrong with the input."""
    try:
        return await work
    except SpoolAborted:
        if video_input.error is not None:
            raise video_input.error from None
        raise Unavailable("the generation was stopped while the video arrived") from None


def _check_picture_size(picture: np.ndarray, what: str, field: str) -> None:
    h, w = picture.shape[:2]
    _check_size(w, h, what, field)


def _check_size(w: int, h: int, what: str, field: str) -> None:
    """The face models need a picture of some size and shape; say so before anything goes to
    the model (instead of its tensor-shape error)."""
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
