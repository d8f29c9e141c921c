"""Re-animate the mouth of one video frame to a target opening (numpy/OpenCV, no Triton).

The frame's face mesh gives the inner lip contours densely (11 points above, 11 below). In the
mouth's own frame (u along the corners, v "down" the face), every column u of the mouth has an
upper inner edge U(u) and a lower one L(u); the source's gap is L - U. To show a gap G(u):

* everything above U (upper lip, nose, cheeks) stays where it is: the upper teeth move with
  the skull, so they stay too;
* the lower lip and the jaw below it move by d = G - (L - U) along v: a translation near the
  lip that fades out towards the neck and to the sides of the jaw. The map's Jacobian there
  is 1 - dd/dv, kept positive by construction (the fade is long) and checked (MIN_DET): the
  warp never folds. Closing lips that are parted over teeth that meet (a smile) moves the
  chin by the jaw's own opening only (the gap's dark, _Layers.jaw): the lower lip stretches
  up over the teeth, and the skin it stretches is resharpened by how far it is stretched;
* between the lips: the source's own gap content (its teeth), never stretched or squeezed;
  where the mouth opens further than the source's, a mouth interior is painted (dark, shaded
  towards the lips, a tongue low in a wide opening) between the gap's upper layer, which
  stays, and its lower layer, which moves down with the lower lip as a jaw carries the lower
  teeth. The layers part where the source's teeth say (lower_layer): between its two rows of
  teeth, or under upper teeth that fill the gap, which keep their whole height (a gap too
  small to show teeth stays whole above the interior, which then gets a painted hint of
  upper teeth). The painted dark is the source mouth's own where it shows one, and what is
  painted is blurred as much as the video blurs its lips (no crisper than around it);
  where it closes, the lower lip slides up over the gap, as a real lower lip covers the
  teeth.

Only the region around mouth and jaw is resampled (bicubic, with the texture that resampling
loses given back, so the skin stays as sharp as the source's); pixels the map does not move
are copied. ``warp_patch`` returns that region alone (what lipsync sends back), ``reanimate``
the whole frame. The frame may be a crop of a larger picture, the mesh in the crop's pixels:
the map is built relative to the region's corner, so the same face in any crop that holds
the region gives the same pixels, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from frame_region import Patch, bounds

try:  # np.clip's ufunc without np.clip's argument checks (~10 us a call on numpy 1)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy < 1.26
    from numpy.core.umath import clip as _clip

#: inner-lip gap at openness 1, in mouth widths (as the talking avatar's jaw drop)
OPEN_GAP = 0.30
#: MediaPipe mesh indices: the inner lip contours from the right corner (78) to the left
#: (308), upper and lower; the outer corners; the chin
INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_CORNERS = (61, 291)
OUTER_LIPS = (
    *(61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291),
    *(375, 321, 405, 314, 17, 84, 181, 91, 146),
)
CHIN = 152
JAW_ANGLES = (58, 288)  # the jaw line's corners below the ears (iBUG 4 and 12)
#: the points mouth_frame reads: outer corners, inner upper and lower lip
_MOUTH_FRAME_POINTS = np.array([*OUTER_CORNERS, *INNER_UPPER, *INNER_LOWER])
#: the lips' outer contour, then the inner one all round (_lip_colour)
_LIP_RING = np.array([*OUTER_LIPS, *INNER_UPPER, *INNER_LOWER[-2:0:-1]])
#: unsharp-mask amount at half-pixel offsets (see _resharpened), and how far its blur reads
RESHARPEN = 0.2
_BLUR_REACH = 4
#: a shut mouth's lower lip goes this share of the mouth's width past the tracked upper inner
#: edge (MouthFrame.shift), and its content starts CLOSE_SKIP of the width below the tracked
#: lower one (mouth_map): no line of teeth or of the dark between the lips
CLOSE_PAST = 0.04
CLOSE_SKIP = 0.03
CLOSE_RAMP = 0.5
#: opening, the skin under the lip takes the difference between the lip's shift and the
#: jaw's over at least OPEN_RAMP times it (mouth_map), at most OPEN_RAMP_MAX lip-to-chin spans
OPEN_RAMP, OPEN_RAMP_MAX = 2.2, 1.2
#: the lip's shift fades to nothing over this share of the inner mouth's half width at its
#: ends (MouthFrame.shift): closing, and opening (longer: closing over it left the corners of
#: a smile parted)
END_TAPER = (0.15, 0.3)
#: closed lips' contact line (mouth_map): darkened by up to SEAM_DARK where the output's gap
#: is under SEAM_GAP px, over a pixel either side of the line, fading to the corners
SEAM_DARK, SEAM_GAP = 0.3, 1.5
#: the smallest Jacobian determinant the lower-face map may have (1 = rigid)
MIN_DET = 0.25
#: closing lips parted over teeth that meet: the chin rises by at least this share of the
#: lips' shift; the skin between lip and chin stretches over at least STRETCH_RAMP times
#: the difference (slope <= 1.5 / STRETCH_RAMP: 0.6, short of folding at 1 - MIN_DET)
JAW_CLOSE = 0.15
STRETCH_RAMP = 2.5
#: unsharp-mask amount per unit of stretch (dd/dv) where the skin is stretched (_resharpened)
STRETCH_SHARPEN = 1.5
#: the painted interior's colour as fractions of the speaker's own lip colour (so it takes the
#: light and skin of the video): near the lips, and at the back of the mouth
_FRONT, _BACK = 0.55, 0.16
#: the painted tongue (_tongue): shown from the first to the second height of the interior
#: (in mouth widths), its colour a fraction of the lips', and how much it covers at most
TONGUE_SHOW = (0.06, 0.16)
_TONGUE = 0.5
TONGUE_WEIGHT = 0.85
#: RGB of painted teeth under good light, and the band they fill, in parts of the opening
_TEETH = np.array([228.0, 224.0, 212.0])
TEETH_BAND = 0.38
#: painted lower teeth (_lower_teeth), where the source's gap shows none of its own: a band
#: rising from the lower lip, LOWER_TEETH_BAND of the painted opening high (at most
#: LOWER_TEETH_MAX mouth widths), shown once that opening passes LOWER_TEETH_SHOW of the
#: width; narrower than the mouth (the lower arch), and in the upper lip's shade (their weight)
LOWER_TEETH_BAND, LOWER_TEETH_MAX = 0.5, 0.09
LOWER_TEETH_SHOW = (0.015, 0.05)
LOWER_TEETH_WEIGHT = 0.92
#: the source's gap is split into layers (mouth_map) from LAYER_GAP of the mouth's width on,
#: fully from twice that
LAYER_GAP = 0.04
#: where the layers part (lower_layer): the source's gap is read along PROFILE_ROWS rows
#: across its middle PROFILE_SPAN of the inner mouth; a row is teeth where it is lighter than
#: TEETH_LEVEL of the way from the lips' luma to the gap's lightest row; the lower teeth are
#: the teeth below darker rows (where the rows of teeth meet) that lies at least
#: MIN_UPPER of the gap down
PROFILE_ROWS, PROFILE_SPAN = 16, 0.6
_PROFILE_ACROSS = np.linspace(-PROFILE_SPAN, PROFILE_SPAN, 9)  # in half widths
_PROFILE_DOWN = (np.arange(PROFILE_ROWS) + 0.5) / PROFILE_ROWS  # in parts of the gap
TEETH_LEVEL, MIN_UPPER = 0.5, 0.3
#: the share of the gap that moves with the jaw where the source shows no teeth (or no light
#: ones) to place the split by
LOWER_SHARE = 0.5
#: the painted back of the mouth takes BACK_OWN of the source mouth's own dark (_own_mouth),
#: where its darkest tenth is darker than OWN_DARK of the lips' luma
BACK_OWN, OWN_DARK = 0.7, 0.6
#: the inner lips all round (_own_mouth)
_INNER_RING = np.array([*INNER_UPPER, *INNER_LOWER[-2:0:-1]])
#: what was painted is blurred (_softened) by at most a Gaussian of this many mouth widths
PAINT_SOFT = 0.015
#: lip colour when the lips cannot be sampled
_LIPS = np.array([150.0, 80.0, 80.0])


@dataclass
class MouthMap:
    """The backward map of one frame's mouth region: output pixel -> source pixel, both
    relative to the region's corner (x0, y0), plus the painted interior's coverage. All arrays
    are (y1 - y0, x1 - x0)."""

    roi: tuple[int, int, int, int]  # x0, y0, x1, y1
    map_x: np.ndarray
    map_y: np.ndarray
    interior: np.ndarray  # 0..1: painted mouth interior
    lower: np.ndarray  # bool: pixels of the moved lower face (the part that must not fold)
    #: 0..1: the moved lower face's cover of each pixel (1 inside it, between 0 and 1 on its
    #: top edge, where warp_patch blends it with the pixel that stays)
    edge: np.ndarray
    shade: np.ndarray  # 0..1: depth of the interior (0 at the lips, 1 in the middle)
    teeth: np.ndarray  # 0..1: painted teeth: a hint of upper ones under the upper lip, lower
    # ones over the lower lip
    tongue: np.ndarray  # 0..1: the painted tongue, low in a wide opening
    #: the box (x0, y0, x1, y1, relative to the region's corner) outside which ``interior``,
    #: ``shade`` and ``teeth`` are 0; None when nothing is painted
    painted: tuple[int, int, int, int] | None = None
    #: 0..SEAM_DARK: the shadow of closed lips' contact line (None when they do not meet)
    seam: np.ndarray | None = None
    #: >= 0: how far the map stretches the lower face along v (dd/dv where positive: lips
    #: closing over teeth stretch the skin under them); None when it stretches nothing
    stretch: np.ndarray | None = None


def inner_gap(points: np.ndarray) -> float:
    """Opening between the inner lips in pixels (>= 0), from a mesh (478 points) or the 68
    iBUG points (60-67 inner lips)."""
    pts = np.asarray(points, np.float64)[:, :2]
    if len(pts) == 68:
        upper, lower = pts[[61, 62, 63]], pts[[67, 66, 65]]
        right, left = pts[48], pts[54]
    else:
        upper, lower = pts[list(INNER_UPPER[3:8])], pts[list(INNER_LOWER[3:8])]
        right, left = pts[OUTER_CORNERS[0]], pts[OUTER_CORNERS[1]]
    across = (left - right) / max(float(np.linalg.norm(left - right)), 1e-6)
    down = np.array([-across[1], across[0]])
    return max(0.0, float(np.mean((lower - upper) @ down)))


def reanimate(frame: np.ndarray, mesh: np.ndarray, openness: float) -> np.ndarray:
    """``frame`` (H, W, 3 uint8 RGB) with its mouth opened to ``openness`` in [0, 1]."""
    patch = warp_patch(frame, mesh, openness)
    return frame if patch is None else patch.onto(frame)


def warp_patch(
    frame: np.ndarray, mesh: np.ndarray, openness: float, mf: MouthFrame | None = None
) -> Patch | None:
    """The pixels ``reanimate`` changes: the mouth map's region of ``frame`` with the mouth
    opened to ``openness``, or None when the change would be below a pixel. ``mf`` is the
    mesh's mouth_frame when the caller has it."""
    mf = mf or mouth_frame(mesh)
    # where the layers part matters only when the mouth opens further than the source's; the
    # lips' colour then serves it and the painted interior (read once)
    opening = mf.target_mid(openness) > mf.source_mid()
    lips = _lip_colour(frame, mesh) if opening else None
    # closing, they say how far the jaw is open (lips parted over teeth that meet close by
    # the lips, not by lifting the chin); _layers reads nothing when there is no gap to read
    layers = _layers(frame, mesh, mf, lips, colour=opening)
    # painted lower teeth where the source shows upper teeth and no lower ones (a smile whose
    # upper teeth fill the gap): the jaw brings them down behind the lower lip
    smile = opening and layers.teeth is not None and not layers.lower_teeth
    built = mouth_map(
        frame.shape[:2], mesh, openness, mf, layers.share, lower_teeth=smile, jaw_share=layers.jaw
    )
    if built is None:  # sub-pixel: nothing visible to do
        return None
    x0, y0, x1, y1 = built.roi
    # The map is relative to the region's corner; in fixed point (what remap does with float
    # maps anyway), the corner is added to the whole pixels exactly: the same face anywhere
    # in the picture samples the same sub-pixel positions.
    whole, fraction = cv2.convertMaps(built.map_x, built.map_y, cv2.CV_16SC2)
    # (What follows, and mouth_map, avoid numpy's slow paths: broadcasts over the channels'
    # or the pairs' short last axis, np.clip's checks, np.gradient's generality, work outside
    # the mouth's band of columns. The same arithmetic per pixel, so the same pixels bit for
    # bit; warp_patch's CPU on the bench speaker video, medians of paired runs: 4.2 -> 3.6 ms
    # a frame at 720p, 2.0 -> 1.8 ms at 512x512.)
    # Bicubic, not Lanczos: the remap was ~0.75 of ~3.1 ms a frame of warp_patch at 512x512,
    # bicubic's 4x4 taps save ~0.5 ms of it (this machine, 2026-12-02), and _resharpened gives
    # back what its softer kernel loses (RESHARPEN 0.2, was 0.15): the unit test's lower-face
    # sharpness 0.91-1.24 of the source's (Lanczos: 0.94-1.27).
    # Only the pixels the map moves are resampled (about 70 % of the region: not the upper
    # lip's rows nor the sides beyond the jaw); the others read their own pixel, which
    # bicubic at a whole-pixel position gives back exactly: a copy is the same, bit for bit.
    height, width = fraction.shape
    moving = (fraction != 0) | (whole[..., 0] != np.arange(width, dtype=np.int16))
    moving |= whole[..., 1] != np.arange(height, dtype=np.int16)[:, None]
    rows, cols = np.flatnonzero(moving.any(1)), np.flatnonzero(moving.any(0))
    pixels = frame[y0:y1, x0:x1].copy()
    if len(rows):
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        # the corner added per coordinate (a broadcast over the pairs' axis of 2 runs numpy's
        # inner loop 2 elements at a time: 3x slower)
        sub = whole[box].copy()
        sub[..., 0] += x0
        sub[..., 1] += y0
        pixels[box] = cv2.remap(
            frame, sub, fraction[box], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
        )
        result = _resharpened(
            pixels.astype(np.float32),
            built,
            (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1),
        )
    else:
        result = pixels.astype(np.float32)
    # the lower face's top edge: its colour blended with the pixel that stays there
    rows, cols = np.nonzero((built.edge > 0) & (built.edge < 1))
    if len(rows):
        cover = built.edge[rows, cols][:, None]
        kept = frame[rows + y0, cols + x0].astype(np.float32)
        result[rows, cols] = kept + cover * (result[rows, cols] - kept)
    if built.seam is not None:  # the closed lips' contact line
        rows, cols = np.nonzero(built.seam)
        result[rows, cols] *= 1.0 - built.seam[rows, cols][:, None]
    if built.painted is not None:  # the interior is painted in its own box only
        px0, py0, px1, py1 = built.painted
        inside = result[py0:py1, px0:px1]
        alpha = built.interior[py0:py1, px0:px1]
        if lips is None:  # (a mouth that closes in the middle may open at a corner)
            lips = _lip_colour(frame, mesh)
        shows = mf.source_mid() >= LAYER_GAP * mf.width  # (a shut mouth shows no inside)
        own_dark, sharpest = _own_mouth(frame, mesh, lips, shows)
        interior = _interior_colour(frame, mesh, built, lips, layers.teeth, own_dark)
        keep = 1 - alpha
        for c in range(3):  # per channel: see _resharpened
            interior[..., c] *= alpha
            inside[..., c] *= keep
        inside += interior
        _softened(result, built.interior, built.painted, mf.width, sharpest)
    result += 0.5
    return Patch(built.roi, _clip(result, 0, 255, out=result).astype(np.uint8))


@dataclass
class MouthFrame:
    """One frame's mouth in its own frame: u along the corners (right to left), v "down" the
    face, both in pixels from ``origin`` (the middle of the inner corners). The hook that the
    source-mouth retrieval (source_mouths.py) shares with the warp, so both agree on where the
    lips are and where the warp puts the lower lip."""

    origin: np.ndarray  # (2,) pixels
    across: np.ndarray  # (2,) unit vector, right corner -> left corner
    down: np.ndarray  # (2,) unit vector
    width: float  # outer corner to outer corner, pixels (>= 4)
    uu: np.ndarray  # inner upper contour (u, v)
    vu: np.ndarray
    ul: np.ndarray  # inner lower contour (u, v)
    vl: np.ndarray
    half: float  # the inner mouth's half width
    centre: float  # and its middle, along u

    def __post_init__(self) -> None:
        # the contours sorted along u once: every edge lookup interpolates on them
        upper, lower = np.argsort(self.uu), np.argsort(self.ul)
        self._upper = (self.uu[upper], self.vu[upper])
        self._lower = (self.ul[lower], self.vl[lower])
        self._source_mid: float | None = None  # source_mid(), once

    def uv(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = p - self.origin
        return q @ self.across, q @ self.down

    def upper_edge(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, *self._upper)

    def lower_edge(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, *self._lower)

    def shift(
        self,
        u: np.ndarray,
        target_mid: float,
        upper: np.ndarray | None = None,
        lower: np.ndarray | None = None,
    ) -> np.ndarray:
        """d(u) at the lip: the target gap minus the source's; a mouth closed (or nearly)
        goes a little past shut (CLOSE_PAST). ``upper`` and ``lower`` are the inner edges at
        ``u`` when the caller has them (of the dtype the result is to have)."""
        upper = self.upper_edge(u) if upper is None else upper
        lower = self.lower_edge(u) if lower is None else lower
        centre, half = float(self.centre), float(self.half)
        gap = np.maximum(lower - upper, 0.0)
        inside = np.clip(1.0 - ((u - centre) / half) ** 2, 0.0, 1.0)
        wanted = float(target_mid) * np.sqrt(inside)
        # Closing an open mouth goes past "shut" by up to CLOSE_PAST of the mouth's width: the
        # tracked inner edge sits a pixel or two inside the lips, and stopping exactly there
        # leaves a line of teeth (and of the dark behind them) between the lips. The lips
        # overlap by that much when shut, less as they part, not at all once the gap asked
        # for is CLOSE_RAMP of that overlap (new gap = wanted - overlap * (1 - wanted / (ramp
        # * overlap)) below it: continuous, rising with ``wanted``; a short ramp, so that
        # slightly parted lips still part: a wide one shut every quiet sound's small opening).
        # (The overlap comes in as the gap grows from 1 to 2 px, and the whole shift fades out
        # over the inner mouth's last END_TAPER: cut off where a gap passed 1 px, or at the
        # ends, where the tracked edges rarely meet exactly, the lower face moved by a step
        # from one column of pixels to the next: a vertical seam through the lower lip.)
        overlap = np.minimum(CLOSE_PAST * float(self.width), 0.4 * gap) * _clip(gap - 1.0, 0, 1)
        ramp = np.maximum(CLOSE_RAMP * overlap, 1e-6)
        past = overlap * np.clip(1.0 - wanted / ramp, 0.0, 1.0)
        shift = wanted - past - gap
        inside_by = half - np.abs(u - centre)
        ends = _clip(inside_by * (1.0 / (END_TAPER[0] * half)), 0.0, 1.0)
        # (opening over a longer taper: a full opening's corners fall steeply otherwise, which
        # the fold guard's finite differences read as a fold on a tilted face, and look boxy)
        opening = _clip(inside_by * (1.0 / (END_TAPER[1] * half)), 0.0, 1.0)
        return shift * np.where(shift > 0, opening, ends)

    def target_mid(self, openness: float) -> float:
        """The gap asked for in the middle of the inner mouth, in pixels: an ellipse across
        the inner mouth, OPEN_GAP mouth widths in its middle."""
        # (min/max on the number: np.clip costs ~10 us a number)
        return min(max(float(openness), 0.0), 1.0) * OPEN_GAP * self.width

    def source_mid(self) -> float:
        """The source's gap in the middle of the inner mouth, in pixels (worked out once: the
        library, the choice and the warp each ask for it)."""
        if self._source_mid is None:
            mid = np.array([self.centre])
            gap = np.maximum(self.lower_edge(mid) - self.upper_edge(mid), 0.0)
            self._source_mid = float(gap[0])
        return self._source_mid


def mouth_frame(mesh: np.ndarray) -> MouthFrame:
    """The mouth frame of one face mesh (478 points)."""
    pts = np.asarray(mesh, np.float64)[_MOUTH_FRAME_POINTS, :2]
    right_corner, left_corner = pts[0], pts[1]
    width = max(float(np.linalg.norm(left_corner - right_corner)), 4.0)
    across = (left_corner - right_corner) / width
    down = np.array([-across[1], across[0]])
    n = len(INNER_UPPER)
    inner_upper, inner_lower = pts[2 : 2 + n], pts[2 + n :]
    origin = (inner_upper[0] + inner_upper[-1]) / 2
    uu, vu = (inner_upper - origin) @ across, (inner_upper - origin) @ down
    ul, vl = (inner_lower - origin) @ across, (inner_lower - origin) @ down
    return MouthFrame(
        origin=origin,
        across=across,
        down=down,
        width=width,
        uu=uu,
        vu=vu,
        ul=ul,
        vl=vl,
        half=max(float(uu.max() - uu.min()) / 2, 2.0),
        centre=float(uu.min() + uu.max()) / 2,
    )


def mouth_map(
    shape: tuple[int, int],
    mesh: np.ndarray,
    openness: float,
    mf: MouthFrame | None = None,
    lower_share: float = LOWER_SHARE,
    *,
    lower_teeth: bool = False,
    jaw_share: float = 1.0,
) -> MouthMap | None:
    """The map that re-animates the mouth of ``mesh`` to ``openness`` in a frame of ``shape``
    (height, width), or None when the change would be below a pixel. ``mf`` is the mesh's
    mouth_frame when the caller has it; ``lower_share`` the part of the source's gap that
    moves down with the jaw as the mouth opens (lower_layer: what the frame's teeth say);
    ``lower_teeth``: paint lower teeth on the interior (the source's gap shows upper teeth
    and none that the jaw carries down); ``jaw_share``: the share of the source's gap that is the
    jaw's own opening (_Layers.jaw): closing, the chin rises by that share of the lips' shift
    (at least JAW_CLOSE), the lower lip alone covers the rest."""
    frame = mf or mouth_frame(mesh)
    origin, across, down, width = frame.origin, frame.across, frame.down, frame.width
    uv, upper_edge, lower_edge = frame.uv, frame.upper_edge, frame.lower_edge
    vu, vl = frame.vu, frame.vl
    half, centre = frame.half, frame.centre
    chin_at, jaw_right, jaw_left = np.asarray(mesh, np.float64)[[CHIN, *JAW_ANGLES], :2]
    _, chin_v = uv(chin_at)
    chin_v = max(float(chin_v), float(vl.max()) + 0.3 * width)

    target_mid = frame.target_mid(openness)
    source_mid = frame.source_mid()
    if abs(target_mid - source_mid) < 0.3:
        return None

    # The region: the jaw's width, from the upper lip to well below the chin (the fade).
    reach = chin_v + 1.2 * (chin_v - float(vl.max()))
    jaw_u = uv(np.stack([jaw_right, jaw_left]))[0]
    jaw_half = max(float(abs(jaw_u[1] - jaw_u[0])) / 2, 2.0 * half)
    jaw_centre = float(jaw_u.mean())
    side = max(2 * half + 0.2 * width, jaw_half + abs(jaw_centre - centre) + 0.1 * width)
    corners_uv = np.array([[centre - side, vu.min() - 2], [centre + side, reach]])
    offsets = (corners_uv[:, :1, None] * across + corners_uv[None, :, 1:] * down).reshape(-1, 2)
    x0, y0, x1, y1 = bounds(origin, offsets, shape)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    # Pixels relative to the mouth's origin, exact in float64 (whole pixels minus the same
    # float), so the same in any crop; the per-pixel work is float32 from there (half the
    # time; the map stays within 1e-4 px of a float64 one). Python floats for the scalars:
    # numpy 1 and 2 then both keep float32.
    gx = (np.arange(x0, x1, dtype=np.float64) - origin[0]).astype(np.float32)[None, :]
    gy = (np.arange(y0, y1, dtype=np.float64) - origin[1]).astype(np.float32)[:, None]
    ax, ay, dx, dy = (float(c) for c in (*across, *down))
    u = gx * ax + gy * ay
    v = gx * dx + gy * dy
    # Beyond the inner mouth's ends the inner edges hold their end values (np.interp does) and
    # the lip's shift (and the interior, below) is 0: what depends on u is worked out on the
    # band of columns whose u reaches the mouth only (a pixel's margin covers float32's
    # rounding). u is linear: a column's extremes lie in its first and last rows.
    (uu, _), (ul, _) = frame._upper, frame._lower
    lo = min(centre - half, float(uu[0]), float(ul[0])) - 1.0
    hi = max(centre + half, float(uu[-1]), float(ul[-1])) + 1.0
    reached = np.flatnonzero((np.maximum(u[0], u[-1]) >= lo) & (np.minimum(u[0], u[-1]) <= hi))
    c0, c1 = (int(reached[0]), int(reached[-1]) + 1) if len(reached) else (0, 0)
    band = np.s_[:, c0:c1]
    ub = u[band]
    top, lip, d_lip = np.empty_like(u), np.empty_like(u), np.zeros_like(u)
    top[band] = upper_edge(ub)
    lip[band] = lower_edge(ub)
    for cols in (np.s_[:c0], np.s_[c1:]):  # outside the band: one value down each column
        top[:, cols] = upper_edge(u[0, cols])
        lip[:, cols] = lower_edge(u[0, cols])
    d_lip[band] = frame.shift(ub, target_mid, top[band], lip[band])
    d_jaw = float(
        np.max(np.abs(frame.shift(np.linspace(centre - half, centre + half, 21), target_mid)))
    ) * float(np.sign(target_mid - source_mid))
    # Below the lower lip the shift goes over from the lip's profile to the jaw's over ``ramp``.
    span = max(chin_v - float(vl.max()), 4.0)
    ramp = 0.6 * span
    stretching = d_jaw < 0 and jaw_share < 1.0
    if stretching:
        # Closing lips that are parted over teeth (a smile): the jaw is already shut, so the
        # chin rises by its own opening only and the lower lip stretches up over the teeth.
        # The skin between them takes the difference over a ramp long enough not to fold
        # (a smoothstep's slope peaks at 1.5 x its mean).
        lifted = d_jaw * max(float(jaw_share), JAW_CLOSE)
        ramp = max(ramp, STRETCH_RAMP * (lifted - d_jaw))
        d_jaw = lifted
    new_lip = lip + d_lip  # the lower lip's inner edge in the output
    gap = lip - top
    split = lip  # where the lower layer starts in the source
    if d_jaw < 0:
        # Closing: the tracked lower inner edge sits a pixel or so inside the gap, on its
        # dark or its teeth; the lower lip brought up from exactly there would carry a line
        # of them to the upper lip (a dashed dark and white seam). Its content starts
        # CLOSE_SKIP below it instead; its edge still lands at new_lip.
        # (By how far the lip closes, to all of it once it shuts: switched on where d_lip
        # turned negative, the skip was a step between columns, a seam in the lower lip where
        # a mouth closes in the middle and opens at the sides.)
        closing = _clip(-d_lip / np.maximum(gap, 1.0), 0.0, 1.0)
        skip = np.minimum(CLOSE_SKIP * width, 0.5 * gap) * closing
        split = lip + skip
        d_lip = d_lip - skip
    # Below the lower lip the shift goes over from the lip's profile d(u) to the jaw's (one
    # value across the jaw, fading at its sides), then fades out below the chin.
    # The jaw moves as one piece: full across its middle half, fading to nothing at the jaw's
    # angles (a narrower profile bends the jaw line into a crease when the jaw closes).
    sides = _smoothed((jaw_half - np.abs(u - jaw_centre)) * (1.0 / (0.5 * jaw_half)))
    if d_jaw > 0:
        # Opening, under the mouth's corners the lip hardly moves and the jaw drops: the skin
        # between takes the difference, over a ramp long enough for it (OPEN_RAMP times it,
        # at most OPEN_RAMP_MAX spans). Over 0.6 spans it stretched up to tenfold there, and
        # the fold guard (_unfolded), which scales the whole map, held a full opening of a
        # short-chinned face to 53-80 % of what was asked.
        difference = np.abs(d_jaw * sides - d_lip)
        difference *= OPEN_RAMP
        ramp = _clip(difference, ramp, OPEN_RAMP_MAX * span, out=difference)
    s = _smoothed((v - lip) * (1.0 / ramp))
    fade = _smoothed((reach - v) * (1.0 / (reach - chin_v + 0.4 * span)))
    # d = ((1 - s) * d_lip + s * (d_jaw * sides)) * fade, in place (the same arithmetic)
    jaw = sides
    jaw *= d_jaw
    jaw *= s
    d = np.subtract(1, s, out=s)
    d *= d_lip
    d += jaw
    d *= fade
    # Layers: where the source's gap shows its teeth and the mouth opens further, the gap's
    # lower layer (``lower_share`` of it: the lower teeth, or the lower lip's inner edge under
    # upper teeth that fill the gap) moves with the lower lip, as a jaw carries its teeth, and
    # the interior opens between the layers; the upper layer (the upper teeth) stays with the
    # skull. The split comes in with the gap's size: no jump from frame to frame.
    #: 0..1 per column: how far the source's gap shows its teeth (0 below LAYER_GAP, 1 from
    #: twice that); the split lies that much of the way to the gap's middle
    layered = _clip(gap * (1.0 / (LAYER_GAP * width)) - 1.0, 0.0, 1.0)
    new_split = new_lip
    if d_jaw > 0:
        # (The lower layer comes along as the lip opens by its thickness: all at once where
        # d_lip turned positive, the split stepped by the layer's thickness between columns.)
        layer = gap * layered * float(lower_share)
        split = lip - layer * _clip(d_lip / np.maximum(layer, 1.0), 0.0, 1.0)
        new_split = split + d_lip
    d, slope = _unfolded(d, v, new_split, (dx, dy))
    stretch = None
    if stretching:  # (elsewhere the slopes stay small)
        stretch = _clip(slope, 0.0, 1.0 - MIN_DET, out=slope)

    # The lower face (with the gap's lower layer) is sampled d further up from half a pixel
    # above the split's new place on; above it, nothing moves. Its top edge is anti-aliased by
    # blending colours (``edge``, warp_patch), not positions: a pixel sampled part of the way
    # up would show what lies between, the gap's dark or teeth as a dashed line on the lips.
    edge = v - new_split
    edge += 0.5
    edge = _clip(edge, 0, 1, out=edge)
    below = edge > 0
    src_v = v - d * below
    # Lips that meet (closing onto the upper one) get the thin shadow of their contact line,
    # as real closed lips have: without it they merge into one band of lip colour.
    seam = None
    if d_jaw < 0:
        meet = _clip(1.0 - (new_split[band] - top[band]) * (1.0 / SEAM_GAP), 0.0, 1.0)
        line = _clip(1.0 - np.abs(v[band] - new_split[band]), 0.0, 1.0)
        across = _clip(1.0 - ((ub - centre) * (1.0 / half)) ** 2, 0.0, 1.0)
        seam = np.zeros_like(u)
        seam[band] = SEAM_DARK * meet * line * across
    # Pixels between the lips that the source had no content for: the painted interior. It
    # fades in below the source's gap (under the upper lip's shadow: ~3 % of the mouth width)
    # and ends at the new lower lip with half a pixel of anti-aliasing. Only in the band: it
    # is 0 beyond the inner mouth's ends.
    vb, top_b, new_b = v[band], top[band], new_split[band]
    source_bottom = np.maximum(split[band], top_b)
    soft = max(1.0, 0.03 * width)
    inner = np.clip((vb - source_bottom) * (1.0 / soft), 0, 1) * np.clip(new_b - vb + 0.5, 0, 1)
    inner *= (np.abs(ub - centre) < half) & (vb > top_b)
    interior = np.zeros_like(u)
    interior[band] = inner
    shade = np.zeros_like(interior)
    teeth = np.zeros_like(interior)
    tongue = np.zeros_like(interior)
    rows, cols = np.flatnonzero(inner.any(1)), np.flatnonzero(inner.any(0)) + c0
    painted = None
    if len(rows):  # shade and teeth matter only where the interior is painted
        painted = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        box = np.s_[painted[1] : painted[3], painted[0] : painted[2]]
        below_top, opening = v[box] - top[box], new_lip[box] - top[box]
        shade[box] = np.clip(
            np.minimum(below_top, opening - below_top) / np.maximum(opening / 2, 1.0), 0.0, 1.0
        )
        teeth[box] = _upper_teeth(below_top, opening, np.abs(u[box] - centre) / half, width) * (
            interior[box] > 0
        )
        teeth[box] *= 1.0 - layered[box]  # none painted where the source shows its own
        bottom = np.maximum(split[box], top[box])  # where the painted interior starts
        across_mouth = np.abs(u[box] - centre) / half
        if lower_teeth:  # rising from the lower lip (the jaw's), where the source has none
            low = _lower_teeth(
                new_split[box] - v[box], new_split[box] - bottom, across_mouth, width
            )
            np.maximum(teeth[box], low * (interior[box] > 0), out=teeth[box])
        tongue[box] = _tongue(v[box] - bottom, new_split[box] - bottom, across_mouth, width)
    # map = corner offset + u * across + src_v * down, in place
    map_x, map_y = u * ax, u * ay
    map_x += float(origin[0] - x0)
    map_y += float(origin[1] - y0)
    map_x += np.multiply(src_v, dx, out=v)  # (v is not needed any more)
    map_y += np.multiply(src_v, dy, out=src_v)
    return MouthMap(
        roi=(int(x0), int(y0), int(x1), int(y1)),
        map_x=map_x,
        map_y=map_y,
        interior=interior,
        lower=below,
        edge=edge,
        seam=seam,
        stretch=stretch,
        shade=shade,
        teeth=teeth,
        tongue=tongue,
        painted=painted,
    )


@dataclass(frozen=True)
class _Layers:
    """What the source's gap says (lower_layer): the share the jaw carries down, whether that
    share holds lower teeth, and the colour of the teeth it shows (RGB; None: no teeth)."""

    share: float
    lower_teeth: bool
    teeth: np.ndarray | None
    #: the share of the gap that is not teeth (the jaw's own opening: rows of teeth that meet
    #: or upper teeth down to the lower lip say the jaw is shut and the lips are parted)
    jaw: float = 1.0


def lower_layer(
    frame: np.ndarray,
    mesh: np.ndarray,
    mf: MouthFrame | None = None,
    lips_rgb: np.ndarray | None = None,
) -> float:
    """The share of the source's gap between the inner lips that a jaw would carry down: the
    lower teeth, below the line where the two rows of teeth meet (``_layers``)."""
    return _layers(frame, mesh, mf, lips_rgb).share


def _layers(
    frame: np.ndarray,
    mesh: np.ndarray,
    mf: MouthFrame | None = None,
    lips_rgb: np.ndarray | None = None,
    *,
    colour: bool = True,
) -> _Layers:
    """The source's gap, read for lower_layer: the share of it that a jaw would carry down,
    whether that share is lower teeth, and the upper teeth's colour where it shows them (the
    painted teeth take it: the speaker's own, in the frame's light).

    The gap is read across its middle (PROFILE_SPAN of the inner mouth), PROFILE_ROWS rows
    from its upper edge to its lower one, each the mean luma along the lips' curve. Rows
    lighter than TEETH_LEVEL of the way from the lips to the lightest row are teeth. Upper
    teeth start at the top; darker rows under them followed by light rows again are where
    they part from the lower teeth: the split lies in the middle of those darker rows. Upper
    teeth that fill the gap down to the lower lip (a smile that hides the lower teeth, the
    astronaut's) keep their whole height: only the rows under them (the lower lip's inner
    edge) go down, the interior opening below the teeth, as a real one does; halving them
    would carry the tips of the upper teeth down with the jaw. A gap with no light rows (no
    teeth, or an unlit mouth) splits at LOWER_SHARE. Read from the frame's pixels at the
    mesh's positions, bilinear: the same face in any crop gives the same share. ``lips_rgb``
    is _lip_colour's when the caller has it; ``colour`` False leaves the teeth's colour unread
    (_Layers.teeth None: a mouth that closes paints no teeth)."""
    frame_mf = mf or mouth_frame(mesh)
    half, centre = frame_mf.half, frame_mf.centre
    u = centre + _PROFILE_ACROSS * half
    top, bottom = frame_mf.upper_edge(u), frame_mf.lower_edge(u)
    gap = float(np.mean(bottom - top))
    none = _Layers(LOWER_SHARE, False, None)
    if gap < LAYER_GAP * frame_mf.width:  # no gap to read (nor layers to split)
        return none
    t = _PROFILE_DOWN  # row centres, 0 top .. 1 bottom
    v = top[None, :] + t[:, None] * (bottom - top)[None, :]
    offsets = u[None, :, None] * frame_mf.across + v[..., None] * frame_mf.down
    profile = _luma_at(frame, frame_mf.origin, offsets).mean(1)
    if lips_rgb is None:
        lips_rgb = _lip_colour(frame, mesh)
    lips = float(lips_rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    lightest = float(profile.max())
    if lightest < lips + 20.0:  # nothing in the gap clearly lighter than the lips
        return none
    teeth = profile > lips + TEETH_LEVEL * (lightest - lips)
    # the upper teeth: the light rows from the top (the first light one within the top third)
    first = np.flatnonzero(teeth[: max(1, round(MIN_UPPER * PROFILE_ROWS))])
    if not len(first):
        return none
    end = int(first[0])
    while end < PROFILE_ROWS and teeth[end]:
        end += 1
    shade = _teeth_colour(frame, frame_mf.origin, offsets[first[0] : end]) if colour else None
    below = np.flatnonzero(teeth[end:])
    if len(below) and end >= MIN_UPPER * PROFILE_ROWS:
        # lower teeth: split in the middle of the darker rows between the two rows of teeth;
        # the jaw is open by those darker rows
        dark = float(below[0]) / PROFILE_ROWS
        return _Layers(1.0 - (end + 0.5 * float(below[0])) / PROFILE_ROWS, True, shade, dark)
    share = 1.0 - end / PROFILE_ROWS
    return _Layers(share, False, shade, share)


def _teeth_colour(frame: np.ndarray, origin: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The mean RGB of ``frame`` at ``origin`` + ``offsets`` (the upper teeth's rows across the
    gap), each at its nearest pixel (edges clamped)."""
    at = np.floor(origin + offsets.reshape(-1, 2) + 0.5).astype(np.int64)
    height, width = frame.shape[:2]
    x = np.clip(at[:, 0], 0, width - 1)
    y = np.clip(at[:, 1], 0, height - 1)
    return frame[y, x].astype(np.float32).mean(0)


def _luma_at(frame: np.ndarray, origin: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Luma of ``frame`` (RGB) at ``origin`` + ``offsets`` (..., 2) pixels, bilinear, edges
    clamped. The whole-pixel part of ``origin`` is added apart from the fractions (a face a
    whole pixel away reads the same values)."""
    base = np.floor(origin)
    at = (origin - base) + offsets
    whole = np.floor(at)
    fx, fy = at[..., 0] - whole[..., 0], at[..., 1] - whole[..., 1]
    height, width = frame.shape[:2]
    x = whole[..., 0].astype(np.int64) + int(base[0])
    y = whole[..., 1].astype(np.int64) + int(base[1])
    x0, x1 = np.clip(x, 0, width - 1), np.clip(x + 1, 0, width - 1)
    y0, y1 = np.clip(y, 0, height - 1), np.clip(y + 1, 0, height - 1)
    luma = np.array([0.299, 0.587, 0.114])

    def at_px(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return frame[yy, xx].astype(np.float64) @ luma

    upper = at_px(y0, x0) * (1 - fx) + at_px(y0, x1) * fx
    lower = at_px(y1, x0) * (1 - fx) + at_px(y1, x1) * fx
    return upper * (1 - fy) + lower * fy


def _resharpened(
    warped: np.ndarray, built: MouthMap, moving: tuple[int, int, int, int]
) -> np.ndarray:
    """Give back the fine texture that resampling between pixels takes away.

    Any interpolation is a low-pass filter whose loss depends on the sub-pixel offset: none at
    whole pixels, most at half a pixel (Lanczos keeps more than bicubic, still not all: the
    lower face of a wrinkled face kept 0.83 of its Laplacian variance). An unsharp mask weighted
    by that offset, RESHARPEN at half a pixel, brings it back to about the source's on the test
    faces without halos (bicubic: 0.91-1.24 at openings 0.1-1, the widest sharpest).
    ``moving`` (x0, y0, x1, y1): the box of the pixels off whole positions, the only ones it
    changes (in place)."""
    x0, y0, x1, y1 = moving
    fx = built.map_x[y0:y1, x0:x1] - np.arange(x0, x1, dtype=np.float32)[None, :]
    fy = built.map_y[y0:y1, x0:x1] - np.arange(y0, y1, dtype=np.float32)[:, None]
    fx -= np.floor(fx)
    fy -= np.floor(fy)
    # amount = RESHARPEN * 4 * max(fx * (1 - fx), fy * (1 - fy)), in place
    amount = np.subtract(1, fx)
    amount *= fx
    across = np.subtract(1, fy, out=fx)
    across *= fy
    amount = np.maximum(amount, across, out=amount)
    amount *= RESHARPEN * 4
    if built.stretch is not None:  # and what stretching the skin spreads out
        amount += STRETCH_SHARPEN * built.stretch[y0:y1, x0:x1]
    # the blur reads 4 pixels around (sigma 1): blurred over the box and that margin, the
    # box's values are those of the whole region's blur
    height, width = built.map_x.shape
    bx0, by0 = max(x0 - _BLUR_REACH, 0), max(y0 - _BLUR_REACH, 0)
    bx1, by1 = min(x1 + _BLUR_REACH, width), min(y1 + _BLUR_REACH, height)
    blurred = cv2.GaussianBlur(warped[by0:by1, bx0:bx1], (0, 0), 1.0)
    blurred = blurred[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    inside = warped[y0:y1, x0:x1]
    sharper = inside - blurred
    # per channel: amount[..., None] broadcast over the 3 channels runs numpy's inner loop 3
    # elements at a time (3.5x slower)
    for c in range(3):
        sharper[..., c] *= amount
    inside += sharper
    return warped


def _softened(
    result: np.ndarray,
    interior: np.ndarray,
    painted: tuple[int, int, int, int],
    width: float,
    sharpest: float,
) -> None:
    """Blur what was painted (in place) as much as the video blurs its mouth: drawn at the
    pixel's edge, the painted dark and teeth were crisper than the lips and teeth around
    them and read as lines drawn on. A step of height C blurred by a Gaussian of sigma
    rises by at most C / (2.5 sigma) a pixel: sigma is chosen so that the painted steps are
    no steeper than ``sharpest``, the source mouth's steepest (_own_mouth), within
    PAINT_SOFT mouth widths. The blur covers the painted pixels and a pixel or two around
    them, faded out with the paint's own cover."""
    height, region_width = interior.shape
    x0, y0, x1, y1 = painted
    area = result[y0:y1, x0:x1]
    luma = area[..., 0] * 0.299 + area[..., 1] * 0.587 + area[..., 2] * 0.114
    contrast = float(luma.max() - luma.min())
    sigma = min(max(contrast / (2.5 * max(sharpest, 1.0)), 0.4), PAINT_SOFT * width)
    pad = int(np.ceil(2 * sigma))
    x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
    x1, y1 = min(x1 + pad, region_width), min(y1 + pad, height)
    area = result[y0:y1, x0:x1]
    blurred = cv2.GaussianBlur(area, (0, 0), sigma)
    cover = cv2.GaussianBlur(interior[y0:y1, x0:x1], (0, 0), sigma)
    cover = _clip(cover * 2.0, 0.0, 1.0, out=cover)  # full on the paint, fading off it
    blurred -= area
    for c in range(3):  # per channel: see _resharpened
        blurred[..., c] *= cover
    area += blurred


def _smoothed(t: np.ndarray) -> np.ndarray:
    """0 below t = 0, 1 above t = 1, a smoothstep between (zero slope at both ends): t * t *
    (3 - 2 * t) of t clipped to 0..1, computed in place over ``t`` (a temporary)."""
    t = _clip(t, 0.0, 1.0, out=t)
    slope = np.multiply(t, 2)
    slope = np.subtract(3, slope, out=slope)
    t *= t
    t *= slope
    return t


def _unfolded(
    d: np.ndarray, v: np.ndarray, new_lip: np.ndarray, down: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """``d`` scaled down below the lip where its slope along v would fold the map, and the
    slope dd/dv of what is returned.

    The lower face is sampled at v - d(v): its Jacobian is 1 - dd/dv. The fades are long
    enough that this holds by construction at the openings the model asks for; an extreme
    shape (a tiny chin, a huge opening) is flattened, never folded."""
    slope = _dv(d, down)
    bad = (1.0 - slope < MIN_DET) & (v > new_lip)
    if not bad.any():
        return d, slope
    scale = (1.0 - MIN_DET) / float(slope[bad].max())
    return d * scale, slope * scale


def _dv(d: np.ndarray, down: tuple[float, float]) -> np.ndarray:
    """dd/dv on the pixel grid: v = a*x + b*y + c with (a, b) = ``down``, a unit vector, so
    dd/dv = a*dd/dx + b*dd/dy (u held fixed), from finite differences along both axes."""
    # np.gradient's arithmetic (central differences halved, one-sided at the edges) without
    # its generality: a tenth of its time here
    along_x, along_y = np.empty_like(d), np.empty_like(d)
    np.subtract(d[:, 2:], d[:, :-2], out=along_x[:, 1:-1])
    along_x[:, 1:-1] /= 2.0
    np.subtract(d[:, 1], d[:, 0], out=along_x[:, 0])
    np.subtract(d[:, -1], d[:, -2], out=along_x[:, -1])
    np.subtract(d[2:], d[:-2], out=along_y[1:-1])
    along_y[1:-1] /= 2.0
    np.subtract(d[1], d[0], out=along_y[0])
    np.subtract(d[-1], d[-2], out=along_y[-1])
    along_x *= down[0]
    along_y *= down[1]
    along_x += along_y
    return along_x


def _interior_colour(
    frame: np.ndarray,
    mesh: np.ndarray,
    built: MouthMap,
    lips: np.ndarray | None = None,
    teeth_rgb: np.ndarray | None = None,
    own_dark: np.ndarray | None = None,
) -> np.ndarray:
    """The painted mouth interior in ``built.painted``'s box: the speaker's lip colour,
    darkening with depth to BACK_OWN of ``own_dark`` (the dark the source's own mouth shows,
    _own_mouth: a black painted dark in a lit smile looked drawn on) or, where the source
    shows none, to _BACK of the lips' colour, with painted teeth (a hint of upper ones under
    the upper lip, lower ones over the lower lip) in ``teeth_rgb``, the colour of the teeth
    the frame shows, or where it shows none as light as the lips' light allows, in their tone
    (grey lips give grey teeth)."""
    assert built.painted is not None
    x0, y0, x1, y1 = built.painted
    if lips is None:
        lips = _lip_colour(frame, mesh)
    depth = built.shade[y0:y1, x0:x1]
    tongue = built.tongue[y0:y1, x0:x1]
    # the back of the mouth: the dark the source's own mouth shows, where it shows one (its
    # corners' shadow), else a fraction of the lips' colour
    back = _BACK * lips if own_dark is None else BACK_OWN * np.asarray(own_dark, np.float32)
    if teeth_rgb is not None:
        teeth = np.asarray(teeth_rgb, np.float32)
    else:
        luma = np.array([0.299, 0.587, 0.114])
        # (scalars clipped with min/max: np.clip on one number costs ~10 us)
        teeth = _TEETH * min(max(float(lips @ luma) / 150.0 + 0.25, 0.5), 1.0)  # dim: dimmer
        tint = min(max(float(lips.max() - lips.min()) / 60.0, 0.0), 1.0)  # grey face: grey
        grey = np.full(3, float(teeth @ luma))
        teeth = (grey + tint * (teeth - grey)).astype(np.float32)
    alpha = built.teeth[y0:y1, x0:x1]
    keep = 1 - alpha
    # dark * (1 - alpha) + teeth * alpha, per channel (see _resharpened)
    out = np.empty((*alpha.shape, 3), np.result_type(lips, depth))
    for c in range(3):
        # lips * front at the lips, the back's colour deep in, the tongue over them
        channel = np.multiply(1 - depth, float(lips[c]) * _FRONT, out=out[..., c])
        channel += depth * float(back[c])
        channel += (float(lips[c]) * _TONGUE - channel) * tongue
        channel *= keep
        channel += alpha * teeth[c]
    return out


def _upper_teeth(
    below_top: np.ndarray, opening: np.ndarray, across: np.ndarray, width: float
) -> np.ndarray:
    """Weight of the painted upper teeth: a band hanging from the upper lip, TEETH_BAND of the
    opening deep (at most 0.16 mouth widths), shown once the mouth opens past 0.08 of its width
    (a slit shows no teeth), fading towards the corners. Only where the painted interior is:
    teeth the source shows are its own."""
    band = np.minimum(0.16 * width, TEETH_BAND * opening)
    show = np.clip((opening / width - 0.08) / 0.1, 0.0, 1.0)
    edge = np.clip(band - below_top + 0.5, 0.0, 1.0) * np.clip(below_top + 0.5, 0.0, 1.0)
    side = np.clip(1.0 - across**2, 0.0, 1.0)
    return show * edge * (0.35 + 0.65 * side) * 0.9


def _lower_teeth(
    above: np.ndarray, opening: np.ndarray, across: np.ndarray, width: float
) -> np.ndarray:
    """Weight of painted lower teeth: a band rising from the lower lip (``above`` it, px) over
    LOWER_TEETH_BAND of the painted ``opening`` (px; at most LOWER_TEETH_MAX mouth widths),
    shown as that opening grows from LOWER_TEETH_SHOW's first to its second share of the
    width, narrower than the mouth (``across``: from the middle, in half widths) and darker
    than the upper ones (LOWER_TEETH_WEIGHT). Without them a smile that opens further shows
    a dark crescent under its upper teeth, drawn like an outline; a real jaw brings its teeth
    down behind the lower lip."""
    band = np.minimum(LOWER_TEETH_MAX * width, LOWER_TEETH_BAND * opening)
    lo, hi = LOWER_TEETH_SHOW
    show = np.clip((opening / width - lo) / (hi - lo), 0.0, 1.0)
    edge = np.clip(band - above + 0.5, 0.0, 1.0) * np.clip(above + 0.5, 0.0, 1.0)
    side = np.sqrt(np.clip(1.0 - (across / 0.85) ** 2, 0.0, 1.0))
    return show * edge * side * LOWER_TEETH_WEIGHT


def _tongue(below: np.ndarray, opening: np.ndarray, across: np.ndarray, width: float) -> np.ndarray:
    """Weight of the painted tongue: the lower part of the painted interior (``below`` its top
    edge, ``opening`` its height, px; ``across`` the distance from the inner mouth's middle in
    half widths), narrower than the mouth, shown once the interior opens past TONGUE_SHOW of
    the mouth's width (a slit is all shadow). Without it a wide opening is one flat dark
    shape: the look of a hole drawn on the face, not of a mouth."""
    show = np.clip((opening / width - TONGUE_SHOW[0]) / (TONGUE_SHOW[1] - TONGUE_SHOW[0]), 0, 1)
    low = np.clip((below / np.maximum(opening, 1.0) - 0.45) / 0.4, 0.0, 1.0)
    low = low * low * (3 - 2 * low)
    middle = np.sqrt(np.clip(1.0 - (across / 0.8) ** 2, 0.0, 1.0))
    return show * low * middle * TONGUE_WEIGHT


def _own_mouth(
    frame: np.ndarray, mesh: np.ndarray, lips_rgb: np.ndarray, parted: bool = True
) -> tuple[np.ndarray | None, float]:
    """What the source's own mouth shows, for the painted interior to match: the mean colour
    of the darkest tenth of the pixels between the inner lips (a mouth's shadowed inside, its
    corners; None where the lips are shut, not ``parted``, or nothing there is darker than
    OWN_DARK of the luma of the lips, ``lips_rgb``), and the largest step in luma between two
    pixels one above the other around the lips (how sharp the video draws a mouth: 0 if
    unread)."""
    pts = np.floor(np.asarray(mesh, np.float64)[_INNER_RING, :2] + 0.5).astype(np.int32)
    x0, y0 = np.maximum(pts.min(0) - 3, 0)
    x1, y1 = np.minimum(pts.max(0) + 4, frame.shape[1::-1])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None, 0.0
    box = frame[y0:y1, x0:x1].astype(np.float32)
    luma = box[..., 0] * 0.299 + box[..., 1] * 0.587 + box[..., 2] * 0.114
    sharpest = float(np.abs(np.diff(luma, axis=0)).max())
    mask = np.zeros(luma.shape, np.uint8)
    cv2.fillPoly(mask, [pts - (x0, y0)], 1)
    inside = mask > 0
    if not parted or inside.sum() < 10:
        return None, sharpest
    pixels, values = box[inside], luma[inside]
    darkest = np.argpartition(values, len(values) // 10)[: max(len(values) // 10, 1)]
    lips = float(lips_rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    if float(values[darkest].mean()) > OWN_DARK * lips:
        return None, sharpest
    return pixels[darkest].mean(0), sharpest


def _lip_colour(frame: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Mean colour between the outer and the inner lip contours."""
    # rounded half up (np.round rounds halves to even: the same lips a whole pixel away would
    # round differently)
    pts = np.floor(np.asarray(mesh, np.float64)[_LIP_RING, :2] + 0.5).astype(np.int32)
    outer, inner = pts[: len(OUTER_LIPS)], pts[len(OUTER_LIPS) :]
    # a mask of the lips' box only (a frame-sized one cost a few ms a frame at 1080p)
    x0, y0 = np.maximum(outer.min(0), 0)
    x1, y1 = np.minimum(outer.max(0) + 1, frame.shape[1::-1])
    if x1 <= x0 or y1 <= y0:
        return _LIPS
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [outer - (x0, y0)], 1)
    cv2.fillPoly(mask, [inner - (x0, y0)], 0)
    if not mask.any():
        return _LIPS
    return np.array(cv2.mean(frame[y0:y1, x0:x1], mask)[:3], np.float32)
