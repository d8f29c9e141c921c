"""Frames whose mouth did not move against the head: the last mesh, moved with the head.

The landmarker (MediaPipe's face mesh, ~3.5 ms a frame on one core) is most of lipsync's
per-frame cost. Where the head moves rigidly and the mouth keeps its shape (a speaker who
listens, an idle presenter, a held vowel), the previous frame's mesh moved by the head's
motion is as good as a new one: on the benchmark's speaker video (a still mouth on a panning,
zooming head) it lies 0.12 px from MediaPipe's own mesh of the frame on average over the lip
points (MediaPipe's own frame-to-frame jitter there: 0.3 px).

The check, in the follower's window (whole-frame pixels, so a crop gives what the whole frame
gives): Lucas-Kanade on points that move with the skull (nose, eye corners, brows, forehead,
cheekbones), a least-squares similarity through them (scale, rotation, shift) that must fit
them within MAX_FIT px, then the previous frame warped by it onto this one over the lips' box:
the mean difference divided by the mean vertical gradient there is the lips' apparent motion
in pixels, which must stay under MAX_APPARENT. Optical flow cannot stand in for the
landmarker on a moving mouth (Lucas-Kanade on the lip points followed a quarter of the
opening's change on a talking video: 1.7 px mean error on the gap); it only says that
nothing moved. Measured on a talking video (the lipsync's own output of the benchmark video)
the check passed 8 % of frames, with 0.22 px mean (0.35 px max) error against MediaPipe on the
lips; on the still-mouthed benchmark video 85 %.
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
#: margin around the lip points of the box compared (px)
_MARGIN = 3

Box = tuple[int, int, int, int]


class StillMouth:
    """Remembers the last frame's window (grey) and says whether this frame's mouth is that
    one's, moved with the head."""

    def __init__(self) -> None:
        self._grey: np.ndarray | None = None
        self._window: Box | None = None

    def remember(self, frame: np.ndarray, origin: tuple[int, int], window: Box | None) -> None:
        """Keep ``window``'s pixels (whole-frame box) of ``frame`` (the crop at ``origin``)."""
        grey = _grey(frame, origin, window)
        self._grey, self._window = (grey, window) if grey is not None else (None, None)

    def moved(
        self,
        frame: np.ndarray,
        origin: tuple[int, int],
        window: Box | None,
        mesh: np.ndarray,
    ) -> np.ndarray | None:
        """``mesh`` (the remembered frame's, whole-frame pixels) moved with the head into
        ``frame`` (the crop at ``origin``), or None when the mouth moved against the head, the
        head did not move rigidly, or this frame cannot be compared (another window)."""
        if self._grey is None or window is None or window != self._window:
            return None
        grey = _grey(frame, origin, window)
        if grey is None:
            return None
        wx, wy = window[0], window[1]
        here = mesh[:, :2] - np.array([wx, wy], np.float32)  # exact: whole pixels off
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
        gradient = np.abs(np.diff(now.astype(np.int16), axis=0)).mean()
        if gradient < 1.0 or difference / gradient > MAX_APPARENT:
            return None
        moved = np.empty_like(mesh)
        moved[:, :2] = (mesh[:, :2].astype(np.float64) - (wx, wy)) @ turn.T + shift + (wx, wy)
        moved[:, 2] = mesh[:, 2] * float(np.hypot(*turn[:, 0]))  # depth scales with the face
        return moved


def _grey(frame: np.ndarray, origin: tuple[int, int], window: Box | None) -> np.ndarray | None:
    """``window``'s pixels of the crop at ``origin`` in grey, or None when it is not all in it."""
    if window is None:
        return None
    ox, oy = origin
    x0, y0, x1, y1 = window[0] - ox, window[1] - oy, window[2] - ox, window[3] - oy
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
