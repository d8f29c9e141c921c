"""Contact sheets of the mouth, for a person to look at:
``python -m bench.quality.look OUT.mp4 [--source SRC.mp4] --dir DIR [--start S]``.

Every STEP-th frame of SECONDS seconds from START, cropped around the mouth (dlib's mouth
landmarks: a square of 1.6 median mouth widths, following the mouth's centre, the same size in
every frame so that opening and scale read true) and upscaled (3x, at most to 240 px per tile),
in a grid with the frame number on each tile. With a source video (lipsync), each row of output
tiles has the source's same frames (same crop boxes) under it. Frames the fold/glitch measure
flags get a red frame. ``python -m bench.quality`` writes one sheet per clip into
``$BENCH_QUALITY_OUT/looks/`` when that variable is set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from . import metrics

#: defaults: from 1 s (after the inputs' 0.8 s of leading silence), 3 s, every 2nd frame
START_S, SECONDS, STEP, COLUMNS = 1.0, 3.0, 2, 8
#: tile upscale, and the largest tile side
UPSCALE, MAX_TILE = 3.0, 240


def _boxes(lms: np.ndarray) -> np.ndarray:
    """(n, 4) square crop boxes (x0, y0, x1, y1): centre = mouth centre (carried over frames
    without a face), side = 1.6 x the clip's median mouth width."""
    mouth = lms[:, metrics.MOUTH]
    width = np.linalg.norm(lms[:, 54] - lms[:, 48], axis=1)
    side = 1.6 * float(np.nanmedian(width)) if np.isfinite(width).any() else 64.0
    centre = (
        np.nanmean(mouth, axis=1) if np.isfinite(mouth).any() else np.full((len(lms), 2), np.nan)
    )
    last = np.array([np.nan, np.nan])
    first = centre[np.isfinite(centre[:, 0])]
    if len(first):
        last = first[0]
    out = np.zeros((len(lms), 4))
    for i, c in enumerate(centre):
        if np.all(np.isfinite(c)):
            last = c
        out[i] = (last[0] - side / 2, last[1] - side / 2, last[0] + side / 2, last[1] + side / 2)
    return out


def _crop(frame: np.ndarray, box: np.ndarray, tile: int) -> np.ndarray:
    x0, y0, x1, _ = box
    if not np.all(np.isfinite(box)):
        return np.zeros((tile, tile, 3), np.uint8)
    s = tile / (x1 - x0)
    m = np.array([[s, 0, -s * x0], [0, s, -s * y0]], np.float32)
    return cv2.warpAffine(frame, m, (tile, tile), flags=cv2.INTER_CUBIC, borderValue=(0, 0, 0))


def mouth_sheet(
    frames: list[np.ndarray],
    lms: np.ndarray,
    *,
    src_frames: list[np.ndarray] | None = None,
    fps: float = 25.0,
    start_s: float = START_S,
    seconds: float = SECONDS,
    step: int = STEP,
    columns: int = COLUMNS,
    flagged: tuple[int, ...] | list[int] = (),
) -> np.ndarray:
    """An RGB contact sheet of the mouth (see the module's doc)."""
    boxes = _boxes(lms)
    side = float(boxes[0, 2] - boxes[0, 0])
    tile = int(min(MAX_TILE, round(UPSCALE * side)))
    first = min(round(start_s * fps), max(0, len(frames) - 1))
    idx = list(range(first, min(len(frames), first + round(seconds * fps)), step))
    flagged = set(flagged)
    gap = 4
    rows_of = 2 if src_frames is not None else 1
    n_rows = (len(idx) + columns - 1) // columns
    sheet = np.full((n_rows * (rows_of * tile + gap), columns * (tile + gap), 3), 32, np.uint8)
    for k, i in enumerate(idx):
        r, c = divmod(k, columns)
        y, x = r * (rows_of * tile + gap), c * (tile + gap)
        t = _crop(frames[i], boxes[i], tile)
        if i in flagged:
            cv2.rectangle(t, (0, 0), (tile - 1, tile - 1), (255, 0, 0), 3)
        cv2.putText(
            t, str(i), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA
        )
        sheet[y : y + tile, x : x + tile] = t
        if src_frames is not None and i < len(src_frames):
            s = _crop(src_frames[i], boxes[i], tile)
            cv2.putText(
                s, "src", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA
            )
            sheet[y + tile : y + 2 * tile, x : x + tile] = s
    return sheet


def write_look(
    out: Path,
    directory: Path,
    *,
    lms: np.ndarray | None = None,
    source: Path | None = None,
    name: str | None = None,
    **kwargs,
) -> Path:
    """Decode ``out`` (and ``source``), find the landmarks unless given, write
    ``directory/<name or out's stem>.mouth.png``; return its path."""
    decoded = metrics.decode(out, audio=False)
    if lms is None:
        lms = metrics.landmarks(decoded.frames)
    src_frames = metrics.decode(source, audio=False).frames if source is not None else None
    kwargs.setdefault("flagged", metrics.glitches(lms).frames)
    sheet = mouth_sheet(decoded.frames, lms, src_frames=src_frames, fps=decoded.fps, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name or Path(out).stem}.mouth.png"
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.quality.look", description=__doc__.split("\n")[0]
    )
    p.add_argument("out", type=Path, help="an output clip (MP4)")
    p.add_argument("--source", type=Path, help="the lipsync source video (rows under the output)")
    p.add_argument("--dir", type=Path, required=True, help="where the PNG goes")
    p.add_argument(
        "--start", type=float, default=START_S, help="first second (default %(default)s)"
    )
    p.add_argument("--seconds", type=float, default=SECONDS, help="how long (default %(default)s)")
    p.add_argument("--step", type=int, default=STEP, help="every n-th frame (default %(default)s)")
    a = p.parse_args(argv)
    path = write_look(
        a.out, a.dir, source=a.source, start_s=a.start, seconds=a.seconds, step=a.step
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
