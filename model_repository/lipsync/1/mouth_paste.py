"""The paste of a retrieved mouth (mouth_library.py's Entry) into a warped frame.

Held apart from the library and the choice (source_mouths.py) because it is pure image work on
one frame: given the warp's output and the chosen entry, it aligns, blends and colour matches,
and keeps no state. Consistent with the jaw by construction: the warp runs first (jaw, chin
and the speaker's own lips of this frame where the speech wants them), then the retrieved
mouth replaces what lies between the lips: the inner mouth and LIP_MARGIN of each lip's
thickness (the lips' shaded inner edges). Per column u of the mouth, the retrieved crop is
aligned so that its upper teeth follow this frame's upper lip and its lower teeth the warped
lower lip (rigid near each lip, the back of the mouth stretched between), mapped with this
frame's mouth similarity transform (it follows the moving head). The paste is feathered
(FEATHER mouth widths) and colour matched (mean and std per channel over the feather ring,
where both images show lip). Only the lips and the interior are pasted, not the skin around
them: the seams lie on the lips' own texture, the speaker's lips never jump between frames'
textures, and the jaw is the warp's, so the two cannot disagree.

The warp's output comes as its patch (video_mouth.warp_patch); the paste's box reaches above
the warp's (over the upper lip), so what comes back is the patch of both boxes together.
"""

from __future__ import annotations

import cv2
import numpy as np
from frame_region import Patch, bounds, union
from mouth_library import GRID, U_EXTENT, V_EXTENT, Entry
from video_mouth import INNER_UPPER, MouthFrame

#: render: how much of each lip's thickness (from the inner edge) the paste covers, the
#: feather in mouth widths, and the colour-matching gain limits
LIP_MARGIN = 0.35
FEATHER = 0.04
GAIN = (0.6, 1.6)


def paste(
    frame: np.ndarray,
    warped: Patch | None,
    mf: MouthFrame,
    points: np.ndarray,
    target_mid: float,
    entry: Entry,
    scale: float,
) -> Patch | None:
    """``entry``'s mouth interior and inner lip edges blended into ``frame`` (whose mouth is
    ``mf``, opened to ``target_mid`` px by the warp, whose pixels are ``warped``; ``points``
    its lip points as in Mouth): the changed pixels, those of the warp's box and the paste's
    together, or None when there is nothing to paste."""
    w = mf.width
    # The output's region in mouth widths: the inner mouth and the lips around it.
    grid_u = mf.centre / w + np.linspace(-1.0, 1.0, 41) * (mf.half / w + FEATHER)
    up = mf.upper_edge(grid_u * w) / w
    low = (mf.lower_edge(grid_u * w) + mf.shift(grid_u * w, target_mid)) / w
    v_lo, v_hi = float(up.min()) - 0.25 - FEATHER, float(low.max()) + 0.25 + FEATHER
    corners = np.array(
        [(a * mf.across + b * mf.down) * w for a in (grid_u[0], grid_u[-1]) for b in (v_lo, v_hi)]
    )
    box = bounds(mf.origin, corners, frame.shape)
    x0, y0, x1, y1 = box
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    gx, gy = np.meshgrid(
        np.arange(x0, x1, dtype=np.float64) - mf.origin[0],
        np.arange(y0, y1, dtype=np.float64) - mf.origin[1],
    )
    u_px = gx * mf.across[0] + gy * mf.across[1]
    v = (gx * mf.down[0] + gy * mf.down[1]) / w
    u = u_px / w

    # This frame's lips: the inner edges (the lower one where the warp put it) and each lip's
    # thickness (outer contour), per column.
    top = mf.upper_edge(u_px) / w
    bottom = (mf.lower_edge(u_px) + mf.shift(u_px, target_mid)) / w
    # Entry columns: the inner mouths' extents matched.
    ue = entry.centre + (u - mf.centre / w) * (entry.half / (mf.half / w))
    e_top = np.interp(ue, GRID, entry.upper)
    e_bottom = np.interp(ue, GRID, entry.lower)
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
    out = Patch.cut(frame, box if warped is None else union([box, warped.box]))
    if warped is not None:
        out.write(warped)
    region = out.view(box).astype(np.float32)
    ring = (alpha > 0.02) & (alpha < 0.98)
    if ring.sum() >= 12:
        source = _colour_matched(source, region, ring)
    a = alpha[..., None].astype(np.float32)
    out.view(box)[:] = np.clip(region * (1 - a) + source * a + 0.5, 0, 255).astype(np.uint8)
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
