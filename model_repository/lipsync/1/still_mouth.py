"""Frames whose mouth did not move against the head: the last mesh, moved with the head.

The landmarker (MediaPipe's face mesh, ~3.5 ms a frame on one core) is most of lipsync's
per-frame cost. Where the head moves rigidly and the mouth keeps its shape (a speaker who
listens, an idle presenter, a held vowel), the previous frame's mesh moved by the head's
motion is as good as a new one: on the benchmark's speaker video (a still mouth on a panning,
zooming head) it lies 0.12 px from MediaPipe's own mesh of the frame on average over the lip
points (MediaPipe's own frame-to-frame jitter there: 0.3 px).

The check, around the face within the follower's window (whole-frame pixels, so a crop
gives what the whole frame gives): Lucas-Kanade on points that move with the skull (nose, eye
corners, brows, forehead, cheekbones), a least-squares similarity through them (scale,
rotation, shift) that must fit them within MAX_FIT px, then the previous frame warped by it
onto this one over the lips' box: the mean difference divided by the mean vertical gradient
there is the lips' apparent motion in pixels, which must stay under MAX_APPARENT. Optical
flow cannot stand in for the landmarker on a moving mouth (Lucas-Kanade on the lip points
followed a quarter of the opening's change on a talking video: 1.7 px mean error on the
gap); it only says that nothing moved.

Measured with the landmarker at least every other frame (face_track.REUSE_RUN): on the
still-mouthed benchmark video (512x512) 112 of 250 frames moved the mesh before them, the lips
0.10 px from the every-frame landmarker's on average (0.27 px at most), their jitter lower
(mean second difference 0.095 against 0.119 px); on a talking video (that video's lipsync
output fed back in) 16 of 250 frames, 0.19 px on average on those. Two frames in a row (112
-> 144 frames at 512x512) raised the lips' jitter at 1280x720 over the every-frame one.
"""

from __future__ import annotations

import cv2
import numpy as np
from video_mouth import INNER_LOWER, INNER_UPPER, OUTER_LIPS

#: mesh points that move with the skull: nose bridge and tip, eye corners, brows, forehead,
#: cheekbones (not the lips, jaw or eyelids)
RIGID_POINTS = np.array(
    [
        *(6, 168, 197, 195, 5, 4),  # nose bridge and tip
        *(33, 133, 263, 362),  # eye corners
        *(70, 105, 107, 336, 334, 300),  # brows
        *(10, 151, 9, 8),  # forehead
        *(234, 454, 116, 345),  # cheekbones
    ]
)
LIP_POINTS = np.array(sorted({*INNER_UPPER, *INNER_LOWER, *OUTER_LIPS}))
#: the similarity must fit the rigid points' flow within this RMS (px), and the lips' apparent
#: motion (mean difference / mean gradient, px) stay under MAX_APPARENT
MAX_FIT = 0.3
MAX_APPARENT = 0.2
#: Lucas-Kanade's window and pyramid levels (a few px of motion per frame at the window's size)
_LK = {"winSize": (15, 15), "maxLevel": 2}
#: margin around the lip points of the box compared (px); around the mesh, of the pixels
#: remembered (px, and a share of the face's side): Lucas-Kanade's windows fit in it
_MARGIN = 3
_MARGIN_PX, _MARGIN_SIDE = 16, 0.1
#: FrameGrey converts this many px more around a box: the next box asked for (the head moved
#: a little) is then mostly in it
GREY_MARGIN = 8

Box = tuple[int, int, int, int]


class StillMouth:
    """Remembers the last frame's face (grey, the box around its mesh) and says whether this
    frame's mouth is that one's, moved with the head."""

    def __init__(self) -> None:
        self._grey: np.ndarray | None = None
        self._box: Box | None = None  # whole-frame pixels

    def remember(
        self,
        frame: np.ndarray,
        origin: tuple[int, int],
        window: Box | None,
        mesh: np.ndarray | None,
        greys: FrameGrey | None = None,
    ) -> None:
        """Keep the pixels of ``frame`` (the crop at ``origin``) around ``mesh`` (whole-frame
        pixels), within the follower's ``window``: a box that depends on the mesh and the
        window alone, so a crop that holds the window remembers what the whole frame does.
        ``greys``: the frame's FrameGrey when the caller has one."""
        self._grey = self._box = None
        if mesh is None or window is None:
            return
        x0, y0 = mesh[:, :2].min(0)
        x1, y1 = mesh[:, :2].max(0)
        margin = _MARGIN_PX + _MARGIN_SIDE * float(max(x1 - x0, y1 - y0))
        box = (
            max(int(np.floor(x0 - margin)), window[0]),
            max(int(np.floor(y0 - margin)), window[1]),
            min(int(np.ceil(x1 + margin)) + 1, window[2]),
            min(int(np.ceil(y1 + margin)) + 1, window[3]),
        )
        grey = (greys or FrameGrey(frame, origin)).box(box)
        if grey is not None and min(grey.shape) >= 16:
            self._grey, self._box = grey, box

    def moved(
        self,
        frame: np.ndarray,
        origin: tuple[int, int],
        mesh: np.ndarray,
        greys: FrameGrey | None = None,
    ) -> np.ndarray | None:
        """``mesh`` (the remembered frame's, whole-frame pixels) moved with the head into
        ``frame`` (the crop at ``origin``), or None when the mouth moved against the head, the
        head did not move rigidly, or this frame cannot be compared (the box is not in it).
        ``greys``: the frame's FrameGrey when the caller has one."""
        if self._grey is None or self._box is None:
            return None
        grey = (greys or FrameGrey(frame, origin)).box(self._box)
        if grey is None:
            return None
        bx, by = self._box[0], self._box[1]
        here = mesh[:, :2] - np.array([bx, by], np.float32)  # exact: whole pixels off
        before = np.ascontiguousarray(here[RIGID_POINTS])
        after, status, _ = cv2.calcOpticalFlowPyrLK(self._grey, grey, before, None, **_LK)
        if after is None or not status.all():
            return None
        fitted = _similarity(before.astype(np.float64), after.astype(np.float64))
        if fitted is None:
            return None
        turn, shift = fitted
        lips = here[LIP_POINTS].astype(np.float64) @ turn.T + shift
        x0, y0 = np.floor(lips.min(0)).astype(int) - _MARGIN
        x1, y1 = np.ceil(lips.max(0)).astype(int) + _MARGIN + 1
        height, width = grey.shape
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            return None
        # the remembered frame resampled where the head took it, over this frame's lips
        matrix = np.hstack([turn, (shift - (x0, y0))[:, None]])
        warped = cv2.warpAffine(self._grey, matrix, (int(x1 - x0), int(y1 - y0)))
        now = grey[y0:y1, x0:x1]
        difference = cv2.absdiff(warped, now).mean()
        # the mean |vertical step|: summed exactly in integers, as numpy's mean sums them
        steps = cv2.absdiff(now[1:], now[:-1])
        gradient = float(steps.sum(dtype=np.int64)) / steps.size if steps.size else np.nan
        if gradient < 1.0 or difference / gradient > MAX_APPARENT:
            return None
        moved = np.empty_like(mesh)
        moved[:, :2] = (mesh[:, :2].astype(np.float64) - (bx, by)) @ turn.T + shift + (bx, by)
        moved[:, 2] = mesh[:, 2] * float(np.hypot(*turn[:, 0]))  # depth scales with the face
        return moved


class FrameGrey:
    """The grey pixels of boxes of one frame (the crop ``frame`` at ``origin``), converted once:
    the tracker asks for three boxes of each frame that mostly overlap (the box compared with
    the frame before, the one remembered for the frame after, the face's for its sharpness).
    A box is converted with GREY_MARGIN px more around it (within the crop) and the boxes
    inside that are cut from it; the conversion is per pixel, so a cut is what converting
    the box alone gives, bit for bit. One conversion a frame instead of two or three: with
    face_track's cheaper _ramp and the integer step mean below, StillMouth.moved, .remember
    and the tracker's confidence took 1.37 -> 1.22 ms CPU a frame at 720p and 1.46 -> 1.38 ms
    at 512x512 (bench speaker video, medians of 10 paired runs; meshes and scores identical)."""

    def __init__(self, frame: np.ndarray, origin: tuple[int, int]) -> None:
        self._frame, self._origin = frame, origin
        self._box: Box | None = None  # whole-frame pixels
        self._grey: np.ndarray | None = None

    def box(self, box: Box) -> np.ndarray | None:
        """``box``'s pixels (whole frame) in grey, or None when it is not all in the crop."""
        ox, oy = self._origin
        x0, y0, x1, y1 = box
        height, width = self._frame.shape[:2]
        if x0 - ox < 0 or y0 - oy < 0 or x1 - ox > width or y1 - oy > height:
            return None
        if not _inside(box, self._box):
            self._box = (
                max(x0 - GREY_MARGIN, ox),
                max(y0 - GREY_MARGIN, oy),
                min(x1 + GREY_MARGIN, ox + width),
                min(y1 + GREY_MARGIN, oy + height),
            )
            self._grey = _grey(self._frame, self._origin, self._box)
        assert self._box is not None and self._grey is not None
        bx, by = self._box[0], self._box[1]
        return self._grey[y0 - by : y1 - by, x0 - bx : x1 - bx]


def _inside(box: Box, outer: Box | None) -> bool:
    return (
        outer is not None
        and outer[0] <= box[0]
        and outer[1] <= box[1]
        and box[2] <= outer[2]
        and box[3] <= outer[3]
    )


def _grey(frame: np.ndarray, origin: tuple[int, int], box: Box) -> np.ndarray | None:
    """``box``'s pixels (whole frame) of the crop at ``origin`` in grey, or None when it is
    not all in the crop."""
    ox, oy = origin
    x0, y0, x1, y1 = box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy
    height, width = frame.shape[:2]
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return None
    return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)


def _similarity(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The least-squares similarity (2x2 scaled rotation, shift) taking ``before`` to
    ``after`` ((n, 2) each), or None when it does not fit them within MAX_FIT px (RMS)."""
    centre_b, centre_a = before.mean(0), after.mean(0)
    b, a = before - centre_b, after - centre_a
    norm = float((b**2).sum())
    if norm <= 0:
        return None
    cos = float((b * a).sum()) / norm
    sin = float((b[:, 0] * a[:, 1] - b[:, 1] * a[:, 0]).sum()) / norm
    turn = np.array([[cos, -sin], [sin, cos]])
    shift = centre_a - turn @ centre_b
    rms = float(np.sqrt((((before @ turn.T + shift) - after) ** 2).sum(1).mean()))
    return (turn, shift) if rms <= MAX_FIT else None
