"""The library of a video's open mouths (Video Rewrite): what is kept, and how each is described.

Held apart from the choice among them (source_mouths.py) and the paste of the chosen one
(mouth_paste.py) because it is the per-video memory: built from the source frames as they
are rendered, bounded, and read by both of the others.

Every tracked source frame whose inner lips are apart (>= MIN_GAP mouth widths) is a
candidate: its lip shape (the 11 + 9 inner and 20 outer lip points of the mesh, in the mouth's
own frame: origin between the inner corners, u along the corners, v down the face, in mouth
widths), its inner gap, the inner contours sampled on a fixed u grid (GRID), the colour of the
upper lip and the skin above it (the light), a pose proxy (the nose tip in the mouth frame,
the eye distance and roll relative to the mouth), and the mouth region resampled by a
similarity transform to a small canonical crop (SCALE px per mouth width, set once per video
from its first mouth, 40..112 px: at most 179 x 157 px). Frames are added one by one as they
are rendered, in output order (source_mouths.py: why not on arrival), so the library grows
with the video; it holds at most ``cap`` entries: a new mouth almost identical to one already
kept (DUPLICATE) is not added, and when full, the most redundant entry (the one of the closest
pair, older first) is dropped: memory stays flat and the kept mouths spread over the shapes
the speaker shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from video_mouth import INNER_LOWER, INNER_UPPER, OUTER_LIPS, MouthFrame, mouth_frame

#: library: at most this many mouths; entries less open than MIN_GAP (mouth widths) are not
#: kept (a closed mouth has no interior to give); a new mouth closer than DUPLICATE (key
#: distance, ~RMS lip point distance in mouth widths) to a kept one is not added
CAP = 256
MIN_GAP = 0.05
DUPLICATE = 0.012
#: canonical crop: px per mouth width (from the video's first mouth, clipped), and its extent
#: in mouth widths around the inner corners' middle: u across, v down
SCALE_RANGE = (40, 112)
U_EXTENT = (-0.8, 0.8)
V_EXTENT = (-0.55, 0.85)

#: mesh points: nose tip, outer eye corners (right, left)
_NOSE, _EYES = 1, (33, 263)
#: the lip points a Mouth describes: the inner upper lip (corners included), the inner lower
#: lip (corners not again), the outer lips
LIP_POINTS = (*INNER_UPPER, *INNER_LOWER[1:-1], *OUTER_LIPS)
#: which of LIP_POINTS are on the lower lip (they move with the warp's lower lip)
ON_LOWER_LIP = np.array(
    [False] * len(INNER_UPPER) + [True] * (len(INNER_LOWER) - 2) + [False] * 11 + [True] * 9
)
#: the u grid (mouth widths) the inner contours are sampled on
GRID = np.linspace(-0.6, 0.6, 61)


@dataclass
class Mouth:
    """One frame's mouth, described (mouth widths in the mouth's own frame)."""

    points: np.ndarray  # (40, 2) lip points (LIP_POINTS)
    gap: float  # inner gap in the middle of the inner mouth
    colour: np.ndarray  # (3,) mean RGB of the upper lip and the skin above it
    pose: np.ndarray  # (4,) nose u, nose v, eye distance / mouth width, roll vs the mouth


@dataclass
class Entry:
    """A library mouth: its description, canonical crop and inner contours on GRID."""

    index: int  # source frame
    mouth: Mouth
    crop: np.ndarray  # (h, w, 3) uint8, canonical frame
    upper: np.ndarray  # inner upper edge v on GRID (mouth widths)
    lower: np.ndarray
    centre: float  # the inner mouth's middle and half width along u (mouth widths)
    half: float
    key: np.ndarray  # diversity key (see _key)


def describe(
    frame: np.ndarray,
    mesh: np.ndarray,
    scale: float,
    mf: MouthFrame | None = None,
    crop: bool = True,
) -> tuple[Mouth, np.ndarray | None]:
    """The mouth of ``frame`` and (``crop``) its canonical crop at ``scale`` px per mouth
    width (``mf``: the mesh's mouth_frame when the caller has it). Without the crop it costs
    a tenth: most frames are described only to be compared (a duplicate, or the choice)."""
    mf = mf or mouth_frame(mesh)
    pts = np.asarray(mesh, np.float64)[[_NOSE, *_EYES], :2]
    points = lip_points(mesh, mf)
    nose = np.array(mf.uv(pts[0])) / mf.width
    eye_vec = pts[2] - pts[1]
    roll = float(np.arctan2(eye_vec @ mf.down, eye_vec @ mf.across))
    pose = np.array([nose[0], nose[1], np.linalg.norm(eye_vec) / mf.width, roll])
    mouth = Mouth(points, mf.source_mid() / mf.width, _upper_colour(frame, mf, points, scale), pose)
    return mouth, _crop(frame, mf, scale) if crop else None


def lip_points(mesh: np.ndarray, mf: MouthFrame) -> np.ndarray:
    """The inner and outer lip points (LIP_POINTS) in mouth widths, in the mouth's frame."""
    u, v = mf.uv(np.asarray(mesh, np.float64)[list(LIP_POINTS), :2])
    return np.stack([u, v], 1) / mf.width


def _crop(
    frame: np.ndarray, mf: MouthFrame, scale: float, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """The mouth region resampled to the canonical frame (similarity transform); ``box`` (x0,
    y0, x1, y1 in the canonical crop's pixels): that part of it only."""
    k = scale / mf.width
    rot = np.stack([mf.across, mf.down])  # frame -> (u, v)
    offset = -np.array([U_EXTENT[0], V_EXTENT[0]]) * scale
    height, width = _crop_size(scale)
    x0, y0, x1, y1 = box or (0, 0, width, height)
    offset -= (x0, y0)
    matrix = np.hstack([k * rot, (offset - k * rot @ mf.origin)[:, None]])
    return cv2.warpAffine(
        frame, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _crop_size(scale: float) -> tuple[int, int]:
    return (
        int(np.ceil((V_EXTENT[1] - V_EXTENT[0]) * scale)),
        int(np.ceil((U_EXTENT[1] - U_EXTENT[0]) * scale)),
    )


def _upper_colour(
    frame: np.ndarray, mf: MouthFrame, points: np.ndarray, scale: float
) -> np.ndarray:
    """Mean colour of the canonical crop above the inner upper lip (upper lip, skin below
    the nose): present whatever the mouth does, so it compares the light of two frames. Only
    that band of the crop is resampled."""
    y_top = int(max(0, (-0.35 - V_EXTENT[0]) * scale))
    upper = points[: len(INNER_UPPER)]
    y_lip = int(max(y_top + 1, (upper[:, 1].min() - V_EXTENT[0]) * scale))
    x0 = int((-0.4 - U_EXTENT[0]) * scale)
    x1 = int((0.4 - U_EXTENT[0]) * scale)
    band = _crop(frame, mf, scale, (x0, y_top, x1, y_lip))
    return np.array(cv2.mean(band)[:3])


def _key(mouth: Mouth) -> np.ndarray:
    """A vector whose Euclidean distance / sqrt(points) is ~ the RMS lip point distance, plus
    the light and the pose."""
    n = np.sqrt(len(mouth.points))
    return (
        np.concatenate([mouth.points.ravel(), mouth.colour * (n / 255.0), mouth.pose * (0.5 * n)])
        / n
    )


def _grid_edges(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The inner contours on GRID, the inner mouth's middle and half width (mouth widths)."""
    upper = points[: len(INNER_UPPER)]
    lower = np.vstack([upper[:1], points[len(INNER_UPPER) : len(INNER_UPPER) + 9], upper[-1:]])
    ou, ol = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    return (
        np.interp(GRID, upper[ou, 0], upper[ou, 1]),
        np.interp(GRID, lower[ol, 0], lower[ol, 1]),
        float(upper[:, 0].min() + upper[:, 0].max()) / 2,
        max(float(upper[:, 0].max() - upper[:, 0].min()) / 2, 0.05),
    )


class MouthLibrary:
    """The open mouths seen so far in one video, at most ``cap`` of them."""

    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.scale: float | None = None
        self._entries: list[Entry] = []
        self._indices: set[int] = set()
        self._nn: list[float] = []  # each entry's distance to its nearest other entry
        #: the last frame ``add`` described, as (its mouth frame, its Mouth): the choice
        #: describes the same frame right after (``described``)
        self._described: tuple[MouthFrame, Mouth] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[Entry]:
        return self._entries

    def add(
        self, index: int, frame: np.ndarray, mesh: np.ndarray, mf: MouthFrame | None = None
    ) -> Entry | None:
        """Consider source frame ``index`` (``mf``: its mesh's mouth_frame when the caller has
        it); the new entry, or None when not kept."""
        if index in self._indices:
            return None
        mf = mf or mouth_frame(mesh)
        if mf.source_mid() / mf.width < MIN_GAP:
            return None  # cheap exit: most talking frames are (nearly) closed
        if self.scale is None:
            self.scale = float(np.clip(mf.width, *SCALE_RANGE))
        mouth, _ = describe(frame, mesh, self.scale, mf, crop=False)
        self._described = (mf, mouth)
        key = _key(mouth)
        dists = self._distances(key)
        if len(dists) and dists.min() < DUPLICATE:
            return None
        crop = _crop(frame, mf, self.scale)
        upper, lower, centre, half = _grid_edges(mouth.points)
        entry = Entry(index, mouth, crop, upper, lower, centre, half, key)
        nn = float(dists.min()) if len(dists) else np.inf
        for i, d in enumerate(dists):
            self._nn[i] = min(self._nn[i], float(d))
        self._entries.append(entry)
        self._nn.append(nn)
        self._indices.add(index)
        if len(self._entries) > self.cap:
            self._evict()
        return entry if index in self._indices else None

    def described(self, frame: np.ndarray, mesh: np.ndarray, mf: MouthFrame) -> Mouth:
        """``describe(frame, mesh, self.scale, mf, crop=False)``'s Mouth (the library has a
        scale), taken from ``add`` when it described this very mouth frame (the same object:
        one frame's) just before. With lipsync making each frame's mouth frame once (model.py),
        SourceMouths.observe + render took, in CPU a frame (medians of 10 paired runs, the same
        pixels): 720p speaker 3.48 -> 3.20 ms, 512x512 2.09 -> 2.03, talking 512x512 2.28 ->
        2.18, talking astronaut 2.81 -> 2.46."""
        assert self.scale is not None
        if self._described is not None and self._described[0] is mf:
            return self._described[1]
        return describe(frame, mesh, self.scale, mf, crop=False)[0]

    def _distances(self, key: np.ndarray) -> np.ndarray:
        if not self._entries:
            return np.zeros(0)
        keys = np.stack([e.key for e in self._entries])
        return np.linalg.norm(keys - key, axis=1)

    def _evict(self) -> None:
        """Drop the most redundant entry: of the closest pair, the older one."""
        nn = np.array(self._nn)
        drop = int(np.argmin(nn))  # the older of its pair: entries are in insertion order
        gone = self._entries.pop(drop)
        self._nn.pop(drop)
        self._indices.discard(gone.index)
        # Whose nearest neighbour it was: measure again.
        keys = np.stack([e.key for e in self._entries])
        stale = np.isclose(np.array(self._nn), np.linalg.norm(keys - gone.key, axis=1))
        for i in np.flatnonzero(stale):
            d = np.linalg.norm(keys - keys[i], axis=1)
            d[i] = np.inf
            self._nn[i] = float(d.min())
