"""The work budget of a generation's visual output, checked before the work is done: the output
pixel rate (``max_output_pixel_rate``) and the temporary disk of a lipsync video's fitted
frames (``max_temp_bytes``). A refusal is RESOURCE_EXHAUSTED with its numbers and a fix."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NoReturn

import numpy as np

from a2v_server.domain import MIN_FPS, GenerateSpec
from a2v_server.errors import ResourceExhausted
from a2v_server.pipeline import framing
from a2v_server.settings import Settings


def check_pixel_rate(
    out_wh: tuple[int, int],
    fps: float,
    spec: GenerateSpec,
    src_wh: tuple[int, int],
    settings: Settings,
    *,
    video: bool,
) -> None:
    """Refuse an output of more pixels per second than ``max_output_pixel_rate``: rendering and
    encoding cost grows with it, whatever the size of the input."""
    limit = settings.max_output_pixel_rate
    w, h = out_wh
    if w * h * fps <= limit:
        return
    rate = f"{fps:g} fps" + (" (the video's frame rate)" if video else "")
    # The same shape: the explicit size's, or what the aspect (or source) gives.
    shape_wh, aspect = (spec.size, None) if spec.size is not None else (src_wh, spec.aspect)
    preset = framing.largest_preset_within(shape_wh, aspect, limit / fps)
    max_fps = math.floor(limit / (w * h) * 100) / 100  # rounded down: the number shown fits
    if video:
        slower = f"send the video at {max_fps:g} fps or less"
    else:
        slower = f"for at most {max_fps:g} fps at {w}x{h}" if max_fps >= MIN_FPS else ""
    fix = f"ask for {preset[0]}p or less" if preset is not None else ""
    if slower:
        fix = f"{fix}, or {slower}" if fix else ("ask " if not video else "") + slower
    fix = fix or "ask for a smaller resolution"
    raise ResourceExhausted(
        f"{w}x{h} at {rate} is {_mpx(w * h * fps)} Mpx/s of output, over the limit of "
        f"{_mpx(limit)} Mpx/s: {fix}",
        field="config.output.resolution",
    )


def _mpx(pixels_per_second: float) -> str:
    return f"{pixels_per_second / 1e6:.3g}"


class TempBudget:
    """The temporary disk of a lipsync video's fitted frames (``max_temp_bytes``): every source
    frame is stored at the output size, width x height x 3 bytes each."""

    def __init__(self, out_wh: tuple[int, int], fps: float, limit: int) -> None:
        self.out_wh = out_wh
        self.fps = fps
        self.limit = limit
        self.frame_bytes = out_wh[0] * out_wh[1] * 3
        #: the most frames that fit
        self.max_frames = limit // self.frame_bytes

    def check_count(self, count: int) -> None:
        """Refuse up front a video whose header says it has more frames than fit."""
        if count > self.max_frames:
            self._refuse(f"about {count}", _bytes(count * self.frame_bytes))

    def frames(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """``frames``, refused before the first one that would not fit."""
        for n, frame in enumerate(frames):
            if n >= self.max_frames:
                need = _bytes((n + 1) * self.frame_bytes)
                self._refuse(f"more than {self.max_frames}", f"more than {need}")
            yield frame

    def _refuse(self, count: str, need: str) -> NoReturn:
        w, h = self.out_wh
        if self.max_frames:
            fix = (
                f"send at most {self.max_frames} frames ({self.max_frames / self.fps:.1f} s at "
                f"{self.fps:g} fps), or ask for a smaller output size"
            )
        else:
            fix = "ask for a smaller output size"
        raise ResourceExhausted(
            f"the video has {count} frames; stored at the output size {w}x{h} they take "
            f"{need} of temporary disk, over the limit of "
            f"{_bytes(self.limit)}: {fix}",
            field="video",
        )


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
