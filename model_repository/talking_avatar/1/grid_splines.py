"""Thin-plate splines evaluated on the mouth renderer's coarse grid (float32, pure numpy).

``tps_kernel32`` is the spline kernel between two point sets; ``GridSplines`` evaluates many
splines (weights from ``shared.tps_weights``) on one grid whose centres share their trailing
static points, computing those points' kernel columns once.
"""

from __future__ import annotations

import numpy as np


def tps_kernel32(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """TPS kernel (m, n) between float32 points ``p`` and ``q``, built from coordinate
    differences (no |p|^2 + |q|^2 - 2pq cancellation): 4x faster than float64, within 0.001 px
    of it."""
    dx = p[:, 0, None] - q[None, :, 0]
    dy = p[:, 1, None] - q[None, :, 1]
    r2 = dx * dx + dy * dy
    kernel = np.log(np.maximum(r2, np.float32(1e-12)))
    kernel *= r2
    kernel *= np.float32(0.5)
    return kernel


class GridSplines:
    """Evaluates many splines on one grid whose centres end in the same static points.

    A renderer's setup evaluates 21 splines (the openness ladder and the lip-shape bases) on
    one coarse grid; only the lip and jaw centres move between them, the anchors (fixed
    landmarks, cheeks, ROI border) do not. Their kernel columns (the log is the cost of the
    setup) are computed once: setup ~2x faster, the same numbers bit for bit.
    """

    def __init__(self, xy: np.ndarray, static: np.ndarray) -> None:
        self._xy = xy
        self._p = xy.astype(np.float32)
        self._static = tps_kernel32(self._p, static.astype(np.float32))
        self._static_points = static

    def eval(self, weights: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """The spline (``tps_weights`` of ``centers``) at the grid points, (m, 2)."""
        n, k = len(centers), len(centers) - len(self._static_points)
        if not np.array_equal(centers[k:], self._static_points):
            raise ValueError("the centres must end with the static points")
        kernel = np.empty((len(self._p), n), np.float32)
        kernel[:, :k] = tps_kernel32(self._p, centers[:k].astype(np.float32))
        kernel[:, k:] = self._static
        return kernel @ weights[:n].astype(np.float32) + weights[n] + self._xy @ weights[n + 1 :]
