"""Boxes of pixels and the patches a renderer changed in them (numpy only, no Triton).

The lipsync model answers with one box per response (REGION) and each frame's pixels inside it;
the warp (video_mouth.py) and the paste (mouth_paste.py) each change a box of the frame, and
source_mouths.py joins them. A box is x0, y0, x1, y1 in integer pixels, x1 and y1 exclusive.

Boxes are derived from float geometry (the face mesh) translation-exactly (``bounds``): the
same face in a crop gives the same box moved by the crop's origin, to the last pixel, so a
crop of the frame renders exactly what the whole frame does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]


def bounds(anchor: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...]) -> Box:
    """The pixel box from floor(min) to ceil(max) + 1 of the points ``anchor + offsets``
    ((2,) and (n, 2), x y), cut to a picture of ``shape`` (height, width, ...); it may be
    empty. Computed from the anchor's whole and fractional parts apart, so that moving the
    anchor by whole pixels moves the box by exactly as much (a float sum would round
    differently at another place in the picture)."""
    whole = np.floor(np.asarray(anchor, np.float64))
    local = (np.asarray(anchor, np.float64) - whole) + np.asarray(offsets, np.float64)
    x0, y0 = (np.floor(local.min(0)) + whole).astype(int)
    x1, y1 = (np.ceil(local.max(0)) + whole).astype(int) + 1
    height, width = shape[:2]
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    return x0, y0, max(x0, min(int(x1), width)), max(y0, min(int(y1), height))


def union(boxes: Iterable[Box]) -> Box:
    """The smallest box holding all of ``boxes`` (at least one)."""
    x0, y0, x1, y1 = zip(*boxes, strict=True)
    return min(x0), min(y0), max(x1), max(y1)


def moved(box: Box, dx: int, dy: int) -> Box:
    x0, y0, x1, y1 = box
    return x0 + dx, y0 + dy, x1 + dx, y1 + dy


@dataclass
class Patch:
    """The pixels of ``box`` in a frame: (y1 - y0, x1 - x0, 3) uint8."""

    box: Box
    pixels: np.ndarray

    @classmethod
    def cut(cls, frame: np.ndarray, box: Box) -> Patch:
        """A copy of ``frame``'s pixels in ``box`` (which lies inside the frame)."""
        x0, y0, x1, y1 = box
        return cls(box, frame[y0:y1, x0:x1].copy())

    def view(self, box: Box) -> np.ndarray:
        """The pixels of ``box`` (inside this patch's box), writable in place."""
        x0, y0, x1, y1 = moved(box, -self.box[0], -self.box[1])
        return self.pixels[y0:y1, x0:x1]

    def write(self, other: Patch) -> None:
        """Put ``other``'s pixels (its box inside this one's) in place."""
        self.view(other.box)[:] = other.pixels

    def onto(self, frame: np.ndarray) -> np.ndarray:
        """A copy of ``frame`` with this patch's pixels in place."""
        out = frame.copy()
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.pixels
        return out
