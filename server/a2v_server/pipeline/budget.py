"""The work budget of a generation's visual output, checked before the work is done: the output
pixel rate (``max_output_pixel_rate``). A refusal is RESOURCE_EXHAUSTED with its numbers and a
fix."""

from __future__ import annotations

import math

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
