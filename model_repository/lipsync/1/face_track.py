"""Face tracking through a video: detect now and then, follow the mesh, smooth without lag.

Full analysis (MediaPipe full-range BlazeFace over the whole frame, then the mesh: ~15 ms at
1080p) runs on the first frame and whenever the face is lost; in between, the landmarker's own
tracking follows the face in a window around it (~2.5 ms), and every REDETECT_EVERY frames a
detection checks that a face is really still there (FaceAnalyzer.confirms: the short-range
detector around the face, ~2 ms, the whole frame's full-range one only when that sees none;
the whole-frame detection alone took 5-7 ms at 512x512). Where the mouth did not move
against the head since the frame before, that frame's mesh moved with the head stands in for
the landmarker's (still_mouth.py: ~0.3 ms; at most REUSE_RUN frames in a row, never where a
detection checks). A One-Euro filter (Casiez et al., CHI 2012) smooths every mesh point: its
cut-off frequency rises with the point's speed, so a still head does not jitter and a moving
one is not trailed.

Each tracked frame also gets a confidence (``score``, lipsync's FACE_SCORE): how sure the
tracker is that it follows the chosen face there, 0..1, the product of six factors, each 1 on
a clear, frontal, steady face of a fair size (see ``_confidence``): the detector's score when
the face was last found (BlazeFace, held while the face is followed); the share of the 68
iBUG points inside the frame the tracker saw (MediaPipe places the rest by guess); the face's
width (the landmarker is unsure below ~64 px); the yaw read from the mesh's depth (a face
turned away); the steadiness of the fit: the RMS residual of a similarity fitted from the
previous frame's unsmoothed mesh to this one's over the points that move with the skull
(still_mouth.RIGID_POINTS), in face widths, smoothed over frames (a mesh moved with the head,
still_mouth.py, keeps the value: it has no fit of its own); and the sharpness of the face
(its grey image at 64x64: mean |Laplacian| over mean |gradient|, which falls as the face
blurs). 0 where no face was found.

Tracking a frame runs in two halves (``prefetch``, then ``mesh``): the first decides whether the
frame before's mesh moved with the head will do and otherwise starts the landmarker on the
frame (MeshFollower.submit); MediaPipe's threads then work on it without the GIL while lipsync
draws the frame before; the second collects the mesh, checks and smooths it. The meshes are
the ones tracking each frame in one go gives, bit for bit. Measured (2-core AMD EPYC VM,
2026-12-03, interleaved with the code before it): the lipsync renderer alone on the bench's
512x512 video 1.12-1.41 s against 1.42-1.79 s of wall time for the same CPU; through the whole
stack, 720p uploads 3.29 against 3.52 s (median of 4), live 720p lipsync p50 301 against 335
ms; 512x512 uploads unchanged (the two cores are busy with the server's encoder there).

A stretch without a face (a cutaway, a title card, a head turned away) costs whole-picture
searches (FaceAnalyzer.analyze: the full-range detector, then the short-range one and four
tiles; at 720p, 37 ms of the model's CPU a frame, where a tracked and re-animated one took
20-22 ms). While none finds a face, the picture is searched again every
ABSENT_SEARCH_SECONDS of source frames, and at once where it has changed since the last
search (ABSENT_CHANGE: a cut back to the speaker, a face coming in, a camera moving). A face
that appears without changing the picture much waits at most that long; one that comes with
a cut is found on the cut's frame.

Meshes are cached per *source* frame index: lipsync modes that revisit frames (loop, bounce)
get exactly the same landmarks again, so a revisited frame never jitters. A frame without a
face is recorded as None and passed through untouched by the renderer.

Frames may be crops of the video's frames (the server sends a window around the face, and
whole frames while it has none): ``origin`` is the crop's top-left pixel in the whole frame.
Detection and analysis run on the crop and their results are moved by the origin; the
follower keeps its window in whole-frame pixels (MeshFollower). Meshes, the cache, and
``face_box`` are all in whole-frame pixels, whatever crop a mesh was found in, so the same
face gives the same mesh in any crop that holds the follower's window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from face_mesh import DLIB68, Face, FaceAnalyzer, MeshFollower, box_of, iou
from still_mouth import RIGID_POINTS, FrameGrey, StillMouth

#: a detection checks every this many source frames that the followed face is still there (the
#: tracker's own presence score rarely, but sometimes, keeps a face on a background)
REDETECT_EVERY = 15
#: at most this many frames in a row take the mesh before them moved with the head instead of
#: the landmarker's (still_mouth.py): the landmarker sees at least every other frame
REUSE_RUN = 1
#: One-Euro filter: cut-off at rest (Hz) and its growth with speed (per face width per second);
#: the speed itself is smoothed at D_CUTOFF. Tuned on the tests' still and moving heads: < 0.3
#: px jitter on a still head under sensor noise, < 1 px behind a head moving 100 px/s.
MIN_CUTOFF = 1.0
BETA = 40.0
D_CUTOFF = 1.0
#: confidence (``_confidence``): detector score to factor (0 at the first, 1 at the second);
#: the share of the 68 points in the frame, face width (px), |yaw| (degrees) likewise; the
#: fit's RMS residual (face widths) free below the first value, the factor 1/2 at the first
#: plus the second; its smoothing per frame; sharpness (mean |Laplacian| / mean |gradient| at
#: 64x64: 0.18 on the tests' sharp face, 0.114 / 0.078 / 0.063 blurred by sigma 1 / 2 / 3 px
#: of its 92 px width, ~0.057 however blurred) 0 at the first, 1 at the second. Measured on
#: the tests' moving face: residual 2-8 per mille a frame (0 where the mesh was moved).
SCORE_DETECTION = (0.5, 0.85)
SCORE_VISIBLE = (0.5, 0.95)
SCORE_WIDTH = (24.0, 64.0)
SCORE_YAW = (70.0, 30.0)
SCORE_RESIDUAL = (0.003, 0.01)
SCORE_SMOOTHING = 0.3
SCORE_SHARPNESS = (0.055, 0.105)
#: while no face is found (see the module's doc): the longest run of source frames between two
#: whole-picture searches, in seconds (5 frames at 25 fps), and the change since the last
#: search that brings the next one forward: the mean absolute difference of the frames' grey
#: thumbnails (THUMB x THUMB), in grey levels. Measured on skimage's astronaut and coffee:
#: sensor noise of sigma 3 / 6 grey levels 0.54 / 0.78, a camera moving the picture by 1 / 2 /
#: 4 px 1.8-2.6 / 3.2-4.9 / 5.5-9.1, a cut 66; a 200 px head sliding 40 px further into a 720p
#: frame only 1.3 (found by the next timed search).
ABSENT_SEARCH_SECONDS = 0.2
ABSENT_CHANGE = 3.0
THUMB = 32


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One-Euro filter over a (points, dims) array; speed is measured in face widths."""

    def __init__(self, fps: float) -> None:
        self._dt = 1.0 / max(1.0, fps)
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def reset(self) -> None:
        self._value = self._speed = None

    def __call__(self, points: np.ndarray, face_width: float) -> np.ndarray:
        if self._value is None or self._speed is None:
            self._value = points.astype(np.float64)
            self._speed = np.zeros(len(points))
            return points
        raw_speed = np.linalg.norm(points[:, :2] - self._value[:, :2], axis=1) / self._dt
        self._speed += _alpha(D_CUTOFF, self._dt) * (raw_speed - self._speed)
        cutoff = MIN_CUTOFF + BETA * self._speed / max(face_width, 1.0)
        a = np.asarray(_alpha(cutoff, self._dt))[:, None]
        self._value = self._value + a * (points - self._value)
        return self._value.astype(np.float32)


@dataclass
class _Started:
    """A frame whose tracking has begun (FaceTracker._start), until FaceTracker._finish."""

    index: int
    frame: np.ndarray
    origin: tuple[int, int]
    greys: FrameGrey
    following: bool = False  # the frame before had the face: followed, not analysed
    last_raw: np.ndarray | None = None  # the frame before's raw mesh (the fit's residual)
    found: np.ndarray | None = None  # the mesh before, moved (still_mouth.py)
    moved: bool = False
    submitted: int = 0  # the follower's ticket when its landmarker works on it


@dataclass
class _Absent:
    """The last whole-picture search that found no face (FaceTracker._search_skipped)."""

    index: int  # the source frame searched
    origin: tuple[int, int]
    shape: tuple[int, ...]
    thumb: np.ndarray  # its grey thumbnail (_thumbnail)
    last: int  # the last source frame given no face since (searched or not)


class FaceTracker:
    """The face mesh for each source frame of one video.

    ``face_index`` picks the n-th largest face, ``face_box`` (x0, y0, x1, y1 in whole-frame
    pixels) the face overlapping it most; once picked, the same face is followed by overlap.
    ``follower`` is the model instance's tracking graph (one sequence runs at a time per
    instance; building a graph per video would cost ~40 ms and its memory).
    """

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        face_index: int = 0,
        face_box: tuple[float, float, float, float] | None = None,
        fps: float = 25.0,
        follower: MeshFollower | None = None,
    ) -> None:
        self._analyzer = analyzer
        self._face_index = face_index
        self._face_box = face_box
        self._filter = OneEuro(fps)
        self._follower = follower or MeshFollower()
        self._follower.restart()
        self._cache: dict[int, np.ndarray | None] = {}
        self._last = -2  # the source index the filter saw last
        self._still = StillMouth()
        self._raw: np.ndarray | None = None  # the last frame's mesh, unsmoothed
        self._reused = 0  # frames in a row given the mesh before them, moved
        self._scores: dict[int, float] = {}  # confidence per source frame (``score``)
        self._detection = 0.0  # the detector's score when the face was last found
        self._residual = 0.0  # the fit's residual, smoothed (``_confidence``)
        self._started: _Started | None = None  # a frame ``prefetch`` started
        self._absent: _Absent | None = None  # while no face is found
        self._search_every = max(1, round(ABSENT_SEARCH_SECONDS * fps))

    def landmarks(
        self, index: int, frame: np.ndarray, origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray | None:
        """The 68 iBUG points of the followed face in source frame ``index`` (or None)."""
        mesh = self.mesh(index, frame, origin)
        return None if mesh is None else np.ascontiguousarray(mesh[DLIB68, :2])

    def score(self, index: int) -> float:
        """How sure the tracker is of the followed face in source frame ``index`` (tracked
        with ``mesh``), 0..1: 0 where there was none (see the module's doc)."""
        return self._scores.get(index, 0.0)

    def mesh(
        self, index: int, frame: np.ndarray, origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray | None:
        """The smoothed (478, 3) mesh of the followed face in source frame ``index``, in
        whole-frame pixels; ``frame`` is the crop whose top-left pixel is ``origin`` (x, y)."""
        if index in self._cache:
            return self._cache[index]
        started, self._started = self._started, None
        if started is not None and started.index != index:
            self._finish(started)  # (callers prefetch the frame they ask for next)
            started = None
        return self._finish(started or self._start(index, frame, origin))

    def prefetch(self, index: int, frame: np.ndarray, origin: tuple[int, int] = (0, 0)) -> None:
        """Start tracking source frame ``index`` when it follows the last tracked one: where it
        needs the landmarker, the landmarker starts on it and works in MediaPipe's threads,
        without the GIL, while the caller goes on (lipsync renders the frame before); ``mesh``
        for the same frame finishes it. The mesh is the one ``mesh`` alone gives."""
        if (
            index not in self._cache
            and self._started is None
            and self._cache.get(index - 1) is not None
            and self._last == index - 1
        ):
            self._started = self._start(index, frame, origin)

    def _start(self, index: int, frame: np.ndarray, origin: tuple[int, int]) -> _Started:
        """Tracking's first half: the frame before moved with the head where the mouth kept
        its shape (still_mouth.py), or else the landmarker started on the frame (submitted
        to the follower) where the frame before had the face."""
        ox, oy = int(origin[0]), int(origin[1])
        started = _Started(index, frame, (ox, oy), FrameGrey(frame, (ox, oy)))
        previous = self._cache.get(index - 1)
        if previous is None or self._last != index - 1:
            return started  # a new stretch: _finish analyses the frame
        started.following = True
        started.last_raw = self._raw
        # the last mesh moved with the head, when the mouth kept its shape (still_mouth.py);
        # the landmarker at least every REUSE_RUN + 1 frames, and where a detection checks
        if self._reused < REUSE_RUN and index % REDETECT_EVERY != 0 and self._raw is not None:
            started.found = self._still.moved(frame, (ox, oy), self._raw, started.greys)
            started.moved = started.found is not None
        self._reused = self._reused + 1 if started.found is not None else 0
        if started.found is None:
            started.submitted = self._follower.submit(frame, box_of(previous), (ox, oy))
        return started

    def _finish(self, started: _Started) -> np.ndarray | None:
        """Tracking's second half: the landmarker's mesh collected, checked by a detection
        every REDETECT_EVERY frames, a new analysis where the face was lost; smoothed, scored,
        cached."""
        index, frame, (ox, oy), greys = started.index, started.frame, started.origin, started.greys
        found, last_raw = started.found, started.last_raw
        if started.submitted:
            found = self._follower.collect(started.submitted)
        if (
            found is not None
            and index % REDETECT_EVERY == 0
            and not self._analyzer.confirms(frame, _moved_box(box_of(found), -ox, -oy))
        ):
            found = None
        if found is None:
            self._follower.restart()
            self._reused = 0
            face = None
            thumb = _thumbnail(frame)
            if not self._search_skipped(index, (ox, oy), frame.shape, thumb):
                analysed = self._analyzer.analyze(frame, thorough=False)
                faces = [_moved(f, ox, oy) for f in analysed]
                face = self._pick(faces, self._cache.get(index - 1))
                absent = _Absent(index, (ox, oy), frame.shape, thumb, index)
                self._absent = absent if face is None else None
            found = face.mesh if face is not None else None
            self._detection = face.score if face is not None else 0.0
            last_raw = None  # a new stretch: no fit from the frame before
        else:
            self._absent = None
        self._raw = found
        self._still.remember(frame, (ox, oy), self._follower.window, found, greys)
        if found is None:
            self._cache[index] = None
            return None
        if not started.following:
            self._filter.reset()  # a new stretch: the start, a seek, or the face came back
        self._last = index
        x0, _, x1, _ = box_of(found)
        smoothed = self._filter(found, x1 - x0)
        self._cache[index] = smoothed
        self._scores[index] = self._confidence(
            frame, (ox, oy), found, last_raw, started.moved, greys
        )
        return smoothed

    def _confidence(
        self,
        frame: np.ndarray,
        origin: tuple[int, int],
        raw: np.ndarray,
        last_raw: np.ndarray | None,
        moved: bool,
        greys: FrameGrey | None = None,
    ) -> float:
        """The confidence of a frame's raw mesh (the module's doc): the product of the
        detection, visibility, width, yaw, steadiness and sharpness factors. It reads the
        mesh, never changes it."""
        x0, y0, x1, y1 = box_of(raw)
        width = x1 - x0
        if last_raw is None:
            self._residual = 0.0
        elif not moved:
            residual = _fit_residual(last_raw[RIGID_POINTS, :2], raw[RIGID_POINTS, :2])
            residual /= max(width, 1.0)
            self._residual += SCORE_SMOOTHING * (residual - self._residual)
        height, frame_width = frame.shape[:2]
        points = raw[DLIB68, :2] - np.array(origin, np.float32)
        inside = (points >= 0).all(1) & (points[:, 0] < frame_width) & (points[:, 1] < height)
        across = raw[454] - raw[234]  # cheek to cheek, with depth
        yaw = abs(math.degrees(math.atan2(float(across[2]), float(across[0]))))
        excess = max(0.0, self._residual - SCORE_RESIDUAL[0]) / SCORE_RESIDUAL[1]
        factors = (
            _ramp(self._detection, *SCORE_DETECTION),
            _ramp(float(inside.mean()), *SCORE_VISIBLE),
            _ramp(width, *SCORE_WIDTH),
            _ramp(yaw, *SCORE_YAW),
            1.0 / (1.0 + excess * excess),
            _ramp(_sharpness(frame, origin, (x0, y0, x1, y1), greys), *SCORE_SHARPNESS),
        )
        return float(np.prod(factors))

    def _search_skipped(
        self, index: int, origin: tuple[int, int], shape: tuple[int, ...], thumb: np.ndarray
    ) -> bool:
        """Whether source frame ``index``, where the frame next to it had no face, goes without
        a whole-picture search (see ABSENT_SEARCH_SECONDS): one searched lately found none,
        the picture has hardly changed since, and it is the same crop. A frame played out of
        order (a seek, loop's wrap) is searched; bounce's backward play goes on as forward."""
        absent = self._absent
        if (
            absent is None
            or abs(index - absent.last) != 1
            or abs(index - absent.index) >= self._search_every
            or (origin, shape) != (absent.origin, absent.shape)
            or float(np.abs(thumb - absent.thumb).mean()) > ABSENT_CHANGE
        ):
            return False
        absent.last = index
        return True

    def _pick(self, faces: list[Face], previous: np.ndarray | None) -> Face | None:
        if not faces:
            return None
        if previous is not None:  # keep following the same person
            prev_box = box_of(previous)
            best = max(faces, key=lambda f: iou(f.box, prev_box))
            return best if iou(best.box, prev_box) > 0.1 else None
        wanted = self._face_box
        if wanted is not None:
            best = max(faces, key=lambda f: iou(f.box, wanted))
            return best if iou(best.box, wanted) > 0.0 else None
        if self._face_index < len(faces):
            return faces[self._face_index]
        return None


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """A THUMB x THUMB grey thumbnail of an RGB frame, float32: 4 x 4 bilinear samples per
    pixel (64 of the frame's pixels: sensor noise averages out). Two steps: INTER_AREA straight
    to THUMB x THUMB, at a factor that is not whole, took 3.3 ms at 720p; this, 0.08 ms."""
    samples = cv2.resize(frame, (4 * THUMB, 4 * THUMB), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(samples, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _ramp(value: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one`` (either side of it), linear between, clipped."""
    # min/max on floats: np.clip's ~10 us a number, six numbers a frame
    return min(max(float((value - zero) / (one - zero)), 0.0), 1.0)


def _fit_residual(before: np.ndarray, after: np.ndarray) -> float:
    """RMS distance (px) of ``after`` from ``before`` moved by the least-squares similarity
    (scale, rotation, shift) between them: what a rigid head motion does not explain."""
    p, q = before.astype(np.float64), after.astype(np.float64)
    ones, zeros = np.ones(len(p)), np.zeros(len(p))
    # x' = a x - b y + tx, y' = b x + a y + ty
    rows = np.vstack(
        [
            np.stack([p[:, 0], -p[:, 1], ones, zeros], 1),
            np.stack([p[:, 1], p[:, 0], zeros, ones], 1),
        ]
    )
    target = np.concatenate([q[:, 0], q[:, 1]])
    params = np.linalg.lstsq(rows, target, rcond=None)[0]
    return float(np.sqrt(((rows @ params - target) ** 2).sum() / len(p)))


def _sharpness(
    frame: np.ndarray,
    origin: tuple[int, int],
    box: tuple[float, ...],
    greys: FrameGrey | None = None,
) -> float:
    """Mean |Laplacian| over mean |gradient| of the face's grey image at 64x64 (the part of
    ``box``, whole-frame pixels, inside the crop ``frame`` at ``origin``): about the inverse
    width of its edges, so it falls as the face blurs, whatever its size and contrast."""
    ox, oy = origin
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(box[0]) - ox), max(0, int(box[1]) - oy)
    x1, y1 = min(width, int(math.ceil(box[2])) - ox), min(height, int(math.ceil(box[3])) - oy)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    grey = (greys or FrameGrey(frame, origin)).box((x0 + ox, y0 + oy, x1 + ox, y1 + oy))
    assert grey is not None  # (the box lies in the crop)
    grey = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    laplacian = float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())
    gradient = float(
        np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean()
    )
    return laplacian / (gradient + 1e-3)


def _moved_box(box: tuple[float, ...], dx: int, dy: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return x0 + dx, y0 + dy, x1 + dx, y1 + dy


def _moved(face: Face, dx: int, dy: int) -> Face:
    """``face`` found in a crop, in the pixels of the frame whose pixel (dx, dy) is the crop's
    top-left one."""
    if dx == dy == 0:
        return face
    mesh = (face.mesh.astype(np.float64) + np.array([dx, dy, 0])).astype(np.float32)
    return Face(box=_moved_box(face.box, dx, dy), score=face.score, mesh=mesh)
