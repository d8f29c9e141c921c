"""Real mouth interiors for lipsync, retrieved from the speaker's own video (Video Rewrite).

The warp (video_mouth.reanimate) moves the lower lip and jaw to the opening the speech asks
for, but where the mouth opens further than the source frame's it has no content and paints
a dark, shaded interior: an open mouth without teeth. Bregler et al. (Video Rewrite, SIGGRAPH
1997) take the mouth from another frame of the same video instead. Here:

Library (MouthLibrary). Every tracked source frame whose inner lips are apart (>= MIN_GAP
mouth widths) is a candidate: its lip shape (the 11 + 9 inner and 20 outer lip points of the
mesh, in the mouth's own frame: origin between the inner corners, u along the corners, v down
the face, in mouth widths), its inner gap, the inner contours sampled on a fixed u grid, the
colour of the upper lip and the skin above it (the light), a pose proxy (the nose tip in the
mouth frame, the eye distance and roll relative to the mouth), and the mouth region resampled
by a similarity transform to a small canonical crop (SCALE px per mouth width, set once per
video from its first mouth, 40..112 px: at most 179 x 157 px). Frames arrive a few at a time
(and are added on arrival, before their audio), so the library grows with the video; it holds
at most ``cap`` entries: a new mouth almost identical to one already kept (DUPLICATE) is not
added, and when full, the most redundant entry (the one of the closest pair, older first) is
dropped: memory stays flat and the kept mouths spread over the shapes the speaker shows.

Choice (SourceMouths.choose). Only when the warp would have to paint: the gap asked for
(OPEN_GAP * openness mouth widths) exceeds the frame's own by more than NEED. The wanted
shape is the frame's own lip contours with the lower lip moved as the warp moves it. Among
the entries whose gap is within TOLERANCE of the one asked for, more open than the frame's
own, lit alike (COLOUR_GATE) and seen from the same pose (POSE_GATE), the cost is the lip
shape distance (RMS, mouth widths) + the gap difference + a colour term + SWITCH unless the
entry is the one used for the previous output frame or its successor in the source: a mouth
held over slowly changing openings does not flicker between near-equal entries. No such
entry (the start of a video, a speaker who never opens the mouth): the warp alone.

Render (SourceMouths.render), consistent with the jaw by construction: the warp runs first
(jaw, chin and the speaker's own lips of this frame where the speech wants them), then the
retrieved mouth replaces what lies between the lips: the inner mouth and LIP_MARGIN of each
lip's thickness (the lips' shaded inner edges). Per column u of the mouth, the retrieved
crop is aligned so that its upper teeth follow this frame's upper lip and its lower teeth
the warped lower lip (rigid near each lip, the back of the mouth stretched between), mapped
with this frame's mouth similarity transform (it follows the moving head). The paste is
feathered (FEATHER mouth widths) and colour matched (mean and std per channel over the
feather ring, where both images show lip). Only the lips and the interior are pasted, not
the skin around them: the seams lie on the lips' own texture, the speaker's lips never jump
between frames' textures, and the jaw is the warp's, so the two cannot disagree.

Paths per frame (MOUTH_SOURCE): PASSED (no face), WARP, RETRIEVED.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from video_mouth import (
    INNER_LOWER,
    INNER_UPPER,
    OPEN_GAP,
    OUTER_LIPS,
    MouthFrame,
    mouth_frame,
    reanimate,
)

PASSED, WARP, RETRIEVED = 0, 1, 2

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
#: choice: retrieve when the warp would paint more than NEED mouth widths of interior; accept
#: entries whose gap is within TOLERANCE (absolute, or relative to the gap asked for)
NEED = 0.04
TOLERANCE = (0.04, 0.3)
#: gates: the light (max channel difference of the upper lip region's mean colour, 0..255)
#: and the pose (nose tip offset in mouth widths, eye distance / mouth width relative, roll
#: relative to the mouth in radians)
COLOUR_GATE = 30.0
POSE_GATE = (0.15, 0.15, 0.2, 0.12)
#: costs: gap difference weight, colour weight (per 255), switching penalty (mouth widths)
GAP_WEIGHT = 1.0
COLOUR_WEIGHT = 0.1
SWITCH = 0.03
#: render: how much of each lip's thickness (from the inner edge) the paste covers, the
#: feather in mouth widths, and the colour-matching gain limits
LIP_MARGIN = 0.35
FEATHER = 0.04
GAIN = (0.6, 1.6)

#: mesh points: nose tip, outer eye corners (right, left)
_NOSE, _EYES = 1, (33, 263)
_LIP_POINTS = (*INNER_UPPER, *INNER_LOWER[1:-1], *OUTER_LIPS)
#: which of _LIP_POINTS are on the lower lip (they move with the warp's lower lip)
_LOWER = np.array(
    [False] * len(INNER_UPPER) + [True] * (len(INNER_LOWER) - 2) + [False] * 11 + [True] * 9
)
#: the u grid (mouth widths) the inner contours are sampled on
_GRID = np.linspace(-0.6, 0.6, 61)


@dataclass
class Mouth:
    """One frame's mouth, described (mouth widths in the mouth's own frame)."""

    points: np.ndarray  # (40, 2) lip points (_LIP_POINTS)
    gap: float  # inner gap in the middle of the inner mouth
    colour: np.ndarray  # (3,) mean RGB of the upper lip and the skin above it
    pose: np.ndarray  # (4,) nose u, nose v, eye distance / mouth width, roll vs the mouth


@dataclass
class Entry:
    """A library mouth: its description, canonical crop and inner contours on _GRID."""

    index: int  # source frame
    mouth: Mouth
    crop: np.ndarray  # (h, w, 3) uint8, canonical frame
    upper: np.ndarray  # inner upper edge v on _GRID (mouth widths)
    lower: np.ndarray
    centre: float  # the inner mouth's middle and half width along u (mouth widths)
    half: float
    key: np.ndarray  # diversity key (see _key)


def describe(frame: np.ndarray, mesh: np.ndarray, scale: float) -> tuple[Mouth, np.ndarray]:
    """The mouth of ``frame`` and its canonical crop at ``scale`` px per mouth width."""
    mf = mouth_frame(mesh)
    pts = np.asarray(mesh, np.float64)[:, :2]
    points = lip_points(mesh, mf)
    crop = _crop(frame, mf, scale)
    nose = np.array(mf.uv(pts[_NOSE])) / mf.width
    eyes = pts[list(_EYES)]
    eye_vec = eyes[1] - eyes[0]
    roll = float(np.arctan2(eye_vec @ mf.down, eye_vec @ mf.across))
    pose = np.array([nose[0], nose[1], np.linalg.norm(eye_vec) / mf.width, roll])
    mouth = Mouth(points, mf.source_mid() / mf.width, _upper_colour(crop, points, scale), pose)
    return mouth, crop


def lip_points(mesh: np.ndarray, mf: MouthFrame) -> np.ndarray:
    """The inner and outer lip points (_LIP_POINTS) in mouth widths, in the mouth's frame."""
    u, v = mf.uv(np.asarray(mesh, np.float64)[list(_LIP_POINTS), :2])
    return np.stack([u, v], 1) / mf.width


def _crop(frame: np.ndarray, mf: MouthFrame, scale: float) -> np.ndarray:
    """The mouth region resampled to the canonical frame (similarity transform)."""
    k = scale / mf.width
    rot = np.stack([mf.across, mf.down])  # frame -> (u, v)
    offset = -np.array([U_EXTENT[0], V_EXTENT[0]]) * scale
    matrix = np.hstack([k * rot, (offset - k * rot @ mf.origin)[:, None]])
    size = (_crop_size(scale)[1], _crop_size(scale)[0])
    return cv2.warpAffine(
        frame, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _crop_size(scale: float) -> tuple[int, int]:
    return (
        int(np.ceil((V_EXTENT[1] - V_EXTENT[0]) * scale)),
        int(np.ceil((U_EXTENT[1] - U_EXTENT[0]) * scale)),
    )


def _upper_colour(crop: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """Mean colour of the canonical crop above the inner upper lip (upper lip, skin below
    the nose): present whatever the mouth does, so it compares the light of two frames."""
    y_top = int(max(0, (-0.35 - V_EXTENT[0]) * scale))
    upper = points[: len(INNER_UPPER)]
    y_lip = int(max(y_top + 1, (upper[:, 1].min() - V_EXTENT[0]) * scale))
    x0 = int((-0.4 - U_EXTENT[0]) * scale)
    x1 = int((0.4 - U_EXTENT[0]) * scale)
    return crop[y_top:y_lip, x0:x1].reshape(-1, 3).mean(0)


def _key(mouth: Mouth) -> np.ndarray:
    """A vector whose Euclidean distance / sqrt(points) is ~ the RMS lip point distance, plus
    the light and the pose."""
    n = np.sqrt(len(mouth.points))
    return (
        np.concatenate([mouth.points.ravel(), mouth.colour * (n / 255.0), mouth.pose * (0.5 * n)])
        / n
    )


def _grid_edges(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The inner contours on _GRID, the inner mouth's middle and half width (mouth widths)."""
    upper = points[: len(INNER_UPPER)]
    lower = np.vstack([upper[:1], points[len(INNER_UPPER) : len(INNER_UPPER) + 9], upper[-1:]])
    ou, ol = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    return (
        np.interp(_GRID, upper[ou, 0], upper[ou, 1]),
        np.interp(_GRID, lower[ol, 0], lower[ol, 1]),
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

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[Entry]:
        return self._entries

    def add(self, index: int, frame: np.ndarray, mesh: np.ndarray) -> Entry | None:
        """Consider source frame ``index``; the new entry, or None when not kept."""
        if index in self._indices:
            return None
        mf = mouth_frame(mesh)
        if mf.source_mid() / mf.width < MIN_GAP:
            return None  # cheap exit: most talking frames are (nearly) closed
        if self.scale is None:
            self.scale = float(np.clip(mf.width, *SCALE_RANGE))
        mouth, crop = describe(frame, mesh, self.scale)
        key = _key(mouth)
        dists = self._distances(key)
        if len(dists) and dists.min() < DUPLICATE:
            return None
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


class SourceMouths:
    """One video's mouth library and the renderer that uses it (one per lipsync sequence)."""

    def __init__(self, cap: int = CAP) -> None:
        self.library = MouthLibrary(cap)
        self._previous: int | None = None  # source index of the entry used last frame

    def observe(self, index: int, frame: np.ndarray, mesh: np.ndarray | None) -> None:
        """A tracked source frame (in any order; frames already seen are ignored)."""
        if mesh is not None:
            self.library.add(index, frame, mesh)

    def render(
        self, frame: np.ndarray, mesh: np.ndarray, openness: float
    ) -> tuple[np.ndarray, int, Entry | None]:
        """``frame`` with its mouth at ``openness``: the image, the path (WARP or RETRIEVED)
        and the library entry used (None for the warp)."""
        warped = reanimate(frame, mesh, openness)
        mf = mouth_frame(mesh)
        entry = self.choose(frame, mesh, openness, mf)
        self._previous = None if entry is None else entry.index
        if entry is None:
            return warped, WARP, None
        points = lip_points(mesh, mf)
        target_mid = mf.target_mid(openness)
        pasted = paste(warped, mf, points, target_mid, entry, self.library.scale)
        return (warped, WARP, None) if pasted is None else (pasted, RETRIEVED, entry)

    def choose(
        self,
        frame: np.ndarray,
        mesh: np.ndarray,
        openness: float,
        mf: MouthFrame | None = None,
    ) -> Entry | None:
        """The library mouth for this output frame, or None when the warp should do."""
        mf = mf or mouth_frame(mesh)
        own = mf.source_mid() / mf.width
        wanted = OPEN_GAP * float(np.clip(openness, 0.0, 1.0))
        entries = self.library.entries
        if wanted - own < NEED or not entries or self.library.scale is None:
            return None
        here, _ = describe(frame, mesh, self.library.scale)
        target = here.points.copy()
        u = target[_LOWER, 0] * mf.width
        target[_LOWER, 1] += mf.shift(u, mf.target_mid(openness)) / mf.width
        gaps = np.array([e.mouth.gap for e in entries])
        colours = np.stack([e.mouth.colour for e in entries])
        poses = np.stack([e.mouth.pose for e in entries])
        shapes = np.stack([e.mouth.points for e in entries])
        tolerance = max(TOLERANCE[0], TOLERANCE[1] * wanted)
        colour_diff = np.abs(colours - here.colour).max(1)
        pose_diff = np.abs(poses - here.pose)
        pose_diff[:, 2] /= max(here.pose[2], 1e-6)
        ok = (
            (np.abs(gaps - wanted) <= tolerance)
            & (gaps >= own + NEED / 2)
            & (colour_diff <= COLOUR_GATE)
            & np.all(pose_diff <= np.array(POSE_GATE), axis=1)
        )
        if not ok.any():
            return None
        shape = np.sqrt(((shapes - target) ** 2).sum(2).mean(1))
        cost = shape + GAP_WEIGHT * np.abs(gaps - wanted) + COLOUR_WEIGHT * colour_diff / 255
        if self._previous is not None:
            follows = np.array([e.index in (self._previous, self._previous + 1) for e in entries])
            cost = cost + SWITCH * ~follows
        cost[~ok] = np.inf
        return entries[int(np.argmin(cost))]


def paste(
    warped: np.ndarray,
    mf: MouthFrame,
    points: np.ndarray,
    target_mid: float,
    entry: Entry,
    scale: float,
) -> np.ndarray | None:
    """``warped`` (the warp's output for the frame whose mouth is ``mf``, opened to
    ``target_mid`` px; ``points`` its lip points as in Mouth) with ``entry``'s mouth interior
    and inner lip edges blended in."""
    w = mf.width
    # The output's region in mouth widths: the inner mouth and the lips around it.
    grid_u = mf.centre / w + np.linspace(-1.0, 1.0, 41) * (mf.half / w + FEATHER)
    up = mf.upper_edge(grid_u * w) / w
    low = (mf.lower_edge(grid_u * w) + mf.shift(grid_u * w, target_mid)) / w
    v_lo, v_hi = float(up.min()) - 0.25 - FEATHER, float(low.max()) + 0.25 + FEATHER
    corners = np.array(
        [
            mf.origin + (a * mf.across + b * mf.down) * w
            for a in (grid_u[0], grid_u[-1])
            for b in (v_lo, v_hi)
        ]
    )
    height, width = warped.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [width, height])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    u_px = (gx - mf.origin[0]) * mf.across[0] + (gy - mf.origin[1]) * mf.across[1]
    v = ((gx - mf.origin[0]) * mf.down[0] + (gy - mf.origin[1]) * mf.down[1]) / w
    u = u_px / w

    # This frame's lips: the inner edges (the lower one where the warp put it) and each lip's
    # thickness (outer contour), per column.
    top = mf.upper_edge(u_px) / w
    bottom = (mf.lower_edge(u_px) + mf.shift(u_px, target_mid)) / w
    # Entry columns: the inner mouths' extents matched.
    ue = entry.centre + (u - mf.centre / w) * (entry.half / (mf.half / w))
    e_top = np.interp(ue, _GRID, entry.upper)
    e_bottom = np.interp(ue, _GRID, entry.lower)
    gap_o = np.maximum(bottom - top, 0.0)
    gap_e = np.maximum(e_bottom - e_top, 0.0)
    rigid = 0.35 * np.minimum(gap_o, gap_e)  # near each lip the teeth keep their size
    t = np.clip((v - top - rigid) / np.maximum(gap_o - 2 * rigid, 1e-6), 0.0, 1.0)
    middle = e_top + rigid + t * (gap_e - 2 * rigid)
    ve = np.where(
        v <= top + rigid,
        v - top + e_top,
        np.where(v >= bottom - rigid, v - bottom + e_bottom, middle),
    )
    map_x = ((ue - U_EXTENT[0]) * scale).astype(np.float32)
    map_y = ((ve - V_EXTENT[0]) * scale).astype(np.float32)
    source = cv2.remap(
        entry.crop, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)

    # The mask: between the inner lips, plus LIP_MARGIN of each lip, feathered; inside the
    # inner mouth's width.
    lip_up, lip_low = _lip_thickness(points, u)
    upper_line = top - LIP_MARGIN * lip_up
    lower_line = bottom + LIP_MARGIN * lip_low
    alpha = (
        _smooth((v - upper_line) / FEATHER + 0.5)
        * _smooth((lower_line - v) / FEATHER + 0.5)
        * _smooth((mf.half / w - np.abs(u - mf.centre / w)) / FEATHER + 0.5)
    )
    if not (alpha > 0.5).any():
        return None
    region = warped[y0:y1, x0:x1].astype(np.float32)
    ring = (alpha > 0.02) & (alpha < 0.98)
    if ring.sum() >= 12:
        source = _colour_matched(source, region, ring)
    a = alpha[..., None].astype(np.float32)
    out = warped.copy()
    out[y0:y1, x0:x1] = np.clip(region * (1 - a) + source * a + 0.5, 0, 255).astype(np.uint8)
    return out


def _lip_thickness(points: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lip thickness (outer minus inner contour, the source's: the warp moves
    the lower lip without changing it) per column ``u``, all in mouth widths."""
    n = len(INNER_UPPER)
    inner_up = points[:n]
    inner_low = np.vstack([inner_up[:1], points[n : n + 9], inner_up[-1:]])
    outer = points[n + 9 :]
    outer_up, outer_low = outer[:11], np.vstack([outer[:1], outer[11:][::-1], outer[10:11]])

    def at(curve: np.ndarray) -> np.ndarray:
        order = np.argsort(curve[:, 0])
        return np.interp(u, curve[order, 0], curve[order, 1])

    return (
        np.maximum(at(inner_up) - at(outer_up), 0.0),
        np.maximum(at(outer_low) - at(inner_low), 0.0),
    )


def _colour_matched(source: np.ndarray, region: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """``source`` with its mean and std per channel over ``ring`` made ``region``'s."""
    s, r = source[ring], region[ring]
    gain = np.clip(r.std(0) / np.maximum(s.std(0), 1.0), *GAIN)
    return (source - s.mean(0)) * gain + r.mean(0)


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)
