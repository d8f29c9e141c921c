"""Checks of the lipsync measures on synthetic frames, no service needed:
``python -m bench.quality.selfcheck`` (a few seconds; exits 1 on a failed check).

* lower-face sharpness ratio (``metrics.lower_face_sharpness``): an unchanged frame reads 1.0;
  the lower face blurred reads far below the 0.85 aim; the lips alone blurred (the renderer's
  business) still reads ~1.0; noise added reads above 1;
* folds/glitches (``metrics.glitches``): a smooth talking mouth with dlib-sized landmark noise
  reads 0; the same with three one-frame pops reads exactly those 3 frames; a mouth that moves
  somewhere and stays (a step) is no glitch; a zoom, pan and roll of the whole face change
  nothing (the shape is measured in the face's own frame).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from . import inputs, metrics


def _portrait() -> tuple[np.ndarray, np.ndarray]:
    rgb = cv2.resize(inputs.load_rgb(inputs.PORTRAIT), (512, 512))
    faces = metrics.analyzer().analyze(rgb)
    if not faces:
        raise RuntimeError("no face in samples/portrait.jpg")
    return rgb, faces[0].landmarks


def sharpness_checks() -> list[tuple[str, float, bool]]:
    """(what, figure, passed) for the lower-face sharpness ratio on edited copies of the
    portrait (the landmarks are the unedited portrait's, as the benchmark takes the source's)."""
    rgb, lms = _portrait()
    n = 5
    src = [rgb] * n
    marks = np.repeat(lms[None], n, axis=0)
    blurred = cv2.GaussianBlur(rgb, (0, 0), 2.0)
    lower = metrics.lower_face_mask(lms, rgb.shape[:2])
    lips = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(lms[metrics.OUTER_LIPS]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((5, 5), np.uint8)).astype(bool)
    blur_lower = np.where(lower[..., None], blurred, rgb)
    blur_lips = np.where(lips[..., None], blurred, rgb)
    noise = np.random.default_rng(0).normal(0, 6, rgb.shape)
    noisy = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    out = []
    for what, frame, test in (
        ("unchanged", rgb, lambda r: abs(r - 1) < 1e-6),
        ("lower face blurred (sigma 2 px)", blur_lower, lambda r: r < 0.5),
        ("lips only blurred", blur_lips, lambda r: abs(r - 1) < 0.02),
        ("noise added (sigma 6)", noisy, lambda r: r > 1.2),
    ):
        r = metrics.lower_face_sharpness([frame] * n, src, marks).ratio
        out.append((f"sharpness ratio, {what}", r, bool(test(r))))
    out.append(("lower-face mask pixels", float(lower.sum()), bool(lower.sum() > 150)))
    return out


def _talking(lms: np.ndarray, frames: int = 250, seed: int = 1) -> np.ndarray:
    """The portrait's landmarks with the mouth opening and closing like fast speech at 25 fps:
    syllables of 5-8 frames (3-5 per second), each a raised-cosine opening of 0.1-0.3 mouth
    widths (0.3 = wide open) of the lower lip, the chin following; dlib-sized noise (0.4 px)
    on every point."""
    rng = np.random.default_rng(seed)
    width = float(np.linalg.norm(lms[54] - lms[48]))
    opening = []
    while len(opening) < frames:
        n = int(rng.integers(5, 9))
        amp = rng.uniform(0.1, 0.3) * width
        opening += list(amp * (1 - np.cos(2 * np.pi * np.arange(n) / n)) / 2)
    opening = np.array(opening[:frames])
    out = np.repeat(lms[None], frames, axis=0).astype(np.float64)
    lower_lip = [55, 56, 57, 58, 59, 65, 66, 67]
    out[:, lower_lip, 1] += opening[:, None]
    out[:, 5:12, 1] += 0.5 * opening[:, None]  # the chin follows
    return out + rng.normal(0, 0.4, out.shape)


def _similarity(lms: np.ndarray, scale: np.ndarray, angle: np.ndarray, shift: np.ndarray):
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) * scale[:, None, None]
    return np.einsum("nij,npj->npi", rot, lms - 256) + 256 + shift[:, None]


def glitch_checks() -> list[tuple[str, float, bool]]:
    _, lms = _portrait()
    clean = _talking(lms)
    out = []
    g = metrics.glitches(clean)
    out.append(("glitches, clean talking mouth (count)", g.count, g.count == 0))
    out.append(("  largest returning step of it, IOD", g.largest, g.largest < metrics.GLITCH_IOD))
    popped = clean.copy()
    iod = float(metrics.inter_ocular(lms))
    pops = [40, 120, 200]
    popped[pops[0], metrics.MOUTH, 1] += 0.12 * iod  # the mouth pasted 0.12 IOD low
    popped[pops[1], metrics.MOUTH, 0] += 0.1 * iod  # ... sideways
    popped[pops[2], 48:60] = popped[pops[2], 48:60][::-1]  # a fold: the outer lip reversed
    g = metrics.glitches(popped)
    out.append(
        (f"glitches, 3 one-frame pops at {pops} (found {g.frames})", g.count, g.frames == pops)
    )
    step = clean.copy()
    step[125:, metrics.MOUTH, 1] += 0.12 * iod
    g = metrics.glitches(step)
    out.append(("glitches, the mouth moving once and staying (count)", g.count, g.count == 0))
    n = len(clean)
    t = np.arange(n) / 25.0
    moved = _similarity(
        clean,
        1 + 0.3 * np.sin(t),
        np.radians(10) * np.sin(0.7 * t),
        np.stack([40 * np.sin(0.5 * t), 20 * np.cos(0.3 * t)], 1),
    )
    g = metrics.glitches(moved)
    out.append(
        ("glitches, clean mouth on a zooming, panning, rolling face (count)", g.count, g.count == 0)
    )
    return out


def main() -> int:
    results = sharpness_checks() + glitch_checks()
    for what, figure, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {figure:.3f}")
    return 0 if all(ok for _, _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
