"""Fit a portrait into the output frame: size from preset + aspect, crop or pad, face kept in.

All functions are pure (numpy + OpenCV); the transform is a uniform scale plus a translation,
so landmarks map with the same formula as pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from a2v_server.errors import InvalidInput

ASPECTS: dict[str, Fraction] = {
    "1:1": Fraction(1, 1),
    "16:9": Fraction(16, 9),
    "9:16": Fraction(9, 16),
    "4:3": Fraction(4, 3),
    "3:4": Fraction(3, 4),
}
MIN_SIDE, MAX_SIDE = 64, 3840
#: short sides of the resolution presets, largest first
PRESETS = (1080, 720, 480)
#: the widest source shape framed as is (long side / short side); a wider one is refused by the
#: pipeline before analysis, and an output at the source's shape is clamped to it
MAX_SOURCE_ASPECT = 4.0
#: margin around the detected face box (fraction of its size) that cropping keeps visible, so
#: hair, chin and the opened jaw stay in frame
FACE_MARGIN = 0.35
#: crop zooms in on a face narrower than this share of the frame's short side (a small face in
#: a wide shot or a large photo), or than MIN_FACE_PIXELS, so it is large enough to animate
MIN_FACE_SHARE = 1 / 8
MIN_FACE_PIXELS = 16


@dataclass(frozen=True)
class Placement:
    """output = input * scale + (dx, dy)"""

    scale: float
    dx: float
    dy: float

    def points(self, xy: np.ndarray) -> np.ndarray:
        return (xy * self.scale + np.array([self.dx, self.dy])).astype(np.float32)


#: the placement of an output that is the source itself (RESOLUTION_PRESET_SOURCE)
SOURCE_PLACEMENT = Placement(1.0, 0.0, 0.0)


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def output_size(
    source_wh: tuple[int, int],
    *,
    aspect: str | None,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Resolve the output (width, height).

    ``aspect`` is a key of ASPECTS or None for the source's shape; ``short_side`` is a preset;
    ``size`` an explicit (w, h), which wins and must agree with ``aspect`` when both are given.
    """
    if size is not None:
        w, h = size
        if w % 2 or h % 2 or not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
            raise InvalidInput(
                f"resolution {w}x{h} is not allowed: width and height must be even and within "
                f"{MIN_SIDE}..{MAX_SIDE}",
                field="config.output.resolution.size",
            )
        if aspect is not None and abs(w / h - float(ASPECTS[aspect])) > 0.01:
            raise InvalidInput(
                f"resolution {w}x{h} does not have the aspect ratio {aspect}: leave "
                "aspect_ratio unset with an explicit size, or use a preset",
                field="config.output.aspect_ratio",
            )
        return w, h
    ratio = float(ASPECTS[aspect]) if aspect is not None else source_wh[0] / source_wh[1]
    # a panorama portrait would give absurd frames
    ratio = min(max(ratio, 1 / MAX_SOURCE_ASPECT), MAX_SOURCE_ASPECT)
    short = short_side or 720
    if ratio >= 1:
        w, h = _even(short * ratio), short
    else:
        w, h = short, _even(short / ratio)
    return min(w, MAX_SIDE), min(h, MAX_SIDE)


def source_output_size(source_wh: tuple[int, int], aspect: str | None) -> tuple[int, int]:
    """The output size of RESOLUTION_PRESET_SOURCE: the source's own, an odd side losing its
    last pixel (H.264 wants even sides); with another ``aspect``, that shape at the source's
    short side. A source over MAX_SIDE is brought within it."""
    w, h = source_wh
    if aspect is None and max(w, h) <= MAX_SIDE:
        return max(2, w - w % 2), max(2, h - h % 2)
    short = min(w, h) * min(1.0, MAX_SIDE / max(w, h))
    return output_size(source_wh, aspect=aspect, short_side=max(2, int(short) - int(short) % 2))


def is_source_crop(source_wh: tuple[int, int], out_wh: tuple[int, int]) -> bool:
    """Whether ``out_wh`` is the source itself (less an odd side's last pixel): no rescaling,
    every output pixel is a source pixel."""
    (w, h), (ow, oh) = source_wh, out_wh
    return 0 <= w - ow <= 1 and 0 <= h - oh <= 1


def largest_preset_within(
    source_wh: tuple[int, int], aspect: str | None, max_pixels: float
) -> tuple[int, tuple[int, int]] | None:
    """The largest preset (short side, output size) whose frame has at most ``max_pixels``, at
    the shape ``aspect`` (or the source's); None when even the smallest has more."""
    for short in PRESETS:
        w, h = output_size(source_wh, aspect=aspect, short_side=short)
        if w * h <= max_pixels:
            return short, (w, h)
    return None


def place(
    source_wh: tuple[int, int],
    out_wh: tuple[int, int],
    face_box: tuple[float, float, float, float],
    fit: str,
) -> Placement:
    """Where the source goes in the output frame.

    crop: fill the frame, centred on the face; if the face (with margin) would not fit, zoom out
    just enough to keep it whole (the uncovered edge is padded); if the face would be smaller
    than MIN_FACE_SHARE of the frame (or MIN_FACE_PIXELS), zoom in until it is not. pad: show
    the whole source.
    """
    sw, sh = source_wh
    ow, oh = out_wh
    x0, y0, x1, y1 = face_box
    fw, fh = (x1 - x0) * (1 + 2 * FACE_MARGIN), (y1 - y0) * (1 + 2 * FACE_MARGIN)
    if fit == "pad":
        scale = min(ow / sw, oh / sh)
        return Placement(scale, (ow - sw * scale) / 2, (oh - sh * scale) / 2)
    scale = max(ow / sw, oh / sh)
    scale = min(scale, ow / fw, oh / fh)  # keep the face and its margin inside
    smallest = max(MIN_FACE_SHARE * min(ow, oh), MIN_FACE_PIXELS) / max(x1 - x0, 1e-6)
    scale = max(scale, min(smallest, ow / fw, oh / fh))  # a small face: zoom in on it
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx = ow / 2 - cx * scale
    dy = oh / 2 - cy * scale
    # Slide back so no empty band shows where the image could cover it.
    dx = _clamp_offset(dx, sw * scale, ow)
    dy = _clamp_offset(dy, sh * scale, oh)
    return Placement(scale, dx, dy)


def _clamp_offset(offset: float, content: float, frame: float) -> float:
    if content >= frame:
        return min(0.0, max(frame - content, offset))
    return (frame - content) / 2


def render_fitted(image: np.ndarray, placement: Placement, out_wh: tuple[int, int]) -> np.ndarray:
    """The output-sized RGB picture: the scaled source over a blurred, darkened fill."""
    ow, oh = out_wh
    if placement == SOURCE_PLACEMENT and is_source_crop(image.shape[1::-1], out_wh):
        return np.ascontiguousarray(image[:oh, :ow])  # the source itself: a copy, exact
    s = placement.scale
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    matrix = np.array([[s, 0, placement.dx], [0, s, placement.dy]], dtype=np.float64)
    if s < 1:
        # Area filtering for downscaling first (warpAffine has no INTER_AREA), then place.
        small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        matrix = np.array([[1, 0, placement.dx], [0, 1, placement.dy]], dtype=np.float64)
        image, interp = small, cv2.INTER_LINEAR
    canvas = _background(image, out_wh)
    return cv2.warpAffine(
        image, matrix, (ow, oh), dst=canvas, flags=interp, borderMode=cv2.BORDER_TRANSPARENT
    )


#: the fill is blurred at 1/BACKGROUND_STEP of the output size and scaled up: a blur this wide
#: (sigma = the long side / 40) looks the same either way, and at 1080p it cost 380-530 ms at
#: full size
BACKGROUND_STEP = 8


def _background(image: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    ow, oh = out_wh
    h, w = image.shape[:2]
    sw, sh = max(1, ow // BACKGROUND_STEP), max(1, oh // BACKGROUND_STEP)
    cover = max(sw / w, sh / h)
    bg = cv2.resize(
        image,
        (max(sw, round(w * cover)), max(sh, round(h * cover))),
        interpolation=cv2.INTER_AREA,
    )
    y = (bg.shape[0] - sh) // 2
    x = (bg.shape[1] - sw) // 2
    bg = bg[y : y + sh, x : x + sw]
    bg = cv2.GaussianBlur(bg, (0, 0), sigmaX=max(sw, sh) / 40)
    bg = (bg.astype(np.float32) * 0.55).astype(np.uint8)
    return cv2.resize(bg, (ow, oh), interpolation=cv2.INTER_LINEAR)
