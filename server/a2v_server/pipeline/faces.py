"""Finding the face in a picture: a downscaled analysis, at full resolution in overlapping tiles
when that finds nothing in a large picture, faces seen in several tiles merged into one, and
the face the request asks for selected among them.

Coordinates are always the analysed picture's own pixels; the backend's ``face_landmarks``
model does the detection.
"""

from __future__ import annotations

import asyncio
import math
import time

import cv2
import numpy as np
from opentelemetry import trace

from a2v_server.domain import DetectedFace
from a2v_server.inference.backend import Backend, Face
from a2v_server.pipeline.stats import StageClock

tracer = trace.get_tracer("a2v_server")

#: the picture is analysed at this size at most (landmarks are scaled back); when that finds no
#: face in a larger portrait, it is analysed again at full resolution in tiles of this size
ANALYSIS_SIDE = 1280
#: the tiles overlap by this much, so a face up to this wide lies whole in one of them (a wider
#: one is found by the downscaled pass in pictures up to ~6800 px on the long side)
TILE_OVERLAP = 320
#: the smallest face, in picture pixels (the width of its brows-to-chin box), that face_landmarks
#: finds in a picture of at most ANALYSIS_SIDE or in one tile of a larger one. MediaPipe's
#: full-range detector looks at 192x192; the model searches 2x2, then 3x3 tiles when the whole
#: picture shows no face. Measured with skimage.data.astronaut() scaled down in a 1280 px canvas
#: (tests/unit/test_visual.py, 8 random places each): all found from 40 px up, 7 of 8 at 32-36
#: px, half at 16-28 px
SMALLEST_FACE = 40
#: the tiled pass drops a face scoring below this fraction of the best one, as face_landmarks
#: does within one picture (a weak detection next to a clear face is a false positive)
RELATIVE_SCORE = 0.25


async def find_faces(
    backend: Backend,
    image: np.ndarray,
    clock: StageClock,
    *,
    tiled: bool = False,
    side: int = ANALYSIS_SIDE,
) -> list[Face]:
    """Faces in ``image``, in its own pixel coordinates, largest first.

    The picture is analysed downscaled to ``side`` (ANALYSIS_SIDE); with ``tiled``, a larger
    picture in which that finds no face is analysed again at full resolution, in overlapping
    tiles of ANALYSIS_SIDE (a small face in a large photo). That costs one analysis per tile,
    only when the first found nothing: 12 tiles for 4000x3000.
    """
    t = time.monotonic()
    analysis, factor = await asyncio.to_thread(_downscale, image, side)
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
            tile = image[y : y + th, x : x + tw]  # the backend makes its tensor from it
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


def detected(faces: list[Face], seconds: float = 0.0) -> tuple[DetectedFace, ...]:
    """One picture's faces (largest first) as DetectedFace, indexed in that order."""
    return tuple(
        DetectedFace(i, f.box, min(1.0, max(0.0, f.score)), seconds, seconds, 0.0)
        for i, f in enumerate(faces)
    )


def select_face(
    faces: list[Face], index: int, box: tuple[float, float, float, float] | None
) -> Face | None:
    """The face a request asks for: the one overlapping ``box`` most, or the one at ``index``
    (largest first); None when there is no such face."""
    if not faces:
        return None
    if box is not None:
        return max(faces, key=lambda f: _overlap(f.box, box))
    return faces[index] if index < len(faces) else None


def _same_face(a, b) -> bool:
    """One face seen twice: the boxes share most of the smaller one (a face cut by a tile's
    edge is found as a part of the whole)."""
    smaller = min(_area(a), _area(b))
    return smaller > 0 and _overlap(a, b) >= 0.5 * smaller


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def scaled_faces(faces: list[Face], scale: float) -> list[Face]:
    """``faces`` found in a picture ``scale`` times the size of the one they are wanted in."""
    return faces if scale == 1.0 else [_moved(f, 1.0 / scale, 0.0, 0.0) for f in faces]


def _moved(face: Face, scale: float, dx: float, dy: float) -> Face:
    """``face`` in another picture's coordinates: scaled, then shifted."""
    x0, y0, x1, y1 = face.box
    box = (x0 * scale + dx, y0 * scale + dy, x1 * scale + dx, y1 * scale + dy)
    shift = np.array([dx, dy], np.float32)
    marks = (np.asarray(face.landmarks, np.float32) * scale + shift).astype(np.float32)
    return Face(box, face.score, marks, moved_mesh(face.mesh, scale, dx, dy))


def moved_mesh(mesh: np.ndarray | None, scale: float, dx: float, dy: float) -> np.ndarray | None:
    """A face mesh (N, 3) in another picture's coordinates: x, y scaled then shifted as the
    landmarks, the depth z scaled by the same factor (it is on the x scale)."""
    if mesh is None:
        return None
    out = np.asarray(mesh, np.float32) * np.float32(scale)
    out[:, 0] += dx
    out[:, 1] += dy
    return out.astype(np.float32)


def _downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    factor = min(1.0, side / max(image.shape[:2]))
    if factor >= 1.0:
        return image, 1.0
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, factor
