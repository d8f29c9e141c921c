"""Lipsync's frames on their way through: the source fitted to the output, the face window the
model sees, and the frames waiting for the model's answer.

Only the face is work. Each output frame is kept as I420 (the source's own samples when the
output is the source's size: nothing converted, nothing rescaled); the model gets the RGB of a
window around the face, and gives back only the box it changed, which is converted back to
YUV and pasted into the kept frame (compose.py). The window follows the face boxes the model
reports, with a margin for the frames in flight; while the model has no face it gets whole
frames to search.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from a2v_server.media import yuv
from a2v_server.media.raw_video import RawVideo
from a2v_server.media.video import Picture, SourceVideo
from a2v_server.media.yuv import BT709, Colour, Converter
from a2v_server.pipeline import framing

#: the window's side in face sides (the model's tracker looks 2.5 face sides around the face)
WINDOW_SCALE = 3.5
#: ... and at least this many pixels (or the frame)
MIN_WINDOW = 256
#: the window moves when the face's centre drifts this share of the window's side from its
#: centre, or the face's size changes by more than SIZE_CHANGE
DRIFT, SIZE_CHANGE = 0.1, 0.2
#: frames between the feed and the encoder (kept as I420): IN_FLIGHT_SECONDS of video, within
#: IN_FLIGHT_BYTES, at least MIN_IN_FLIGHT. Enough to keep the model busy; more would only
#: decode ahead and take the cores from the frames the client waits for (measured at 720p: the
#: first chunk 730 ms after the config with 115 frames allowed, as the decoder ran 4 s ahead)
IN_FLIGHT_SECONDS = 0.6
IN_FLIGHT_BYTES = 160 * 1024 * 1024
MIN_IN_FLIGHT = 8
#: ... and at the start only this many more than the encoder has taken: the first frames go
#: through alone, without decoding ahead to compete with them for the cores
START_IN_FLIGHT = 4

Box = tuple[int, int, int, int]


@dataclass
class OutputFrame:
    """One output frame before the mouth: packed I420 at the output size, and its RGB when it
    was made in RGB (fitted to another size or shape)."""

    i420: np.ndarray
    rgb: np.ndarray | None = None


class FittedSource:
    """The speaker video's slots as output frames. ``frame`` and ``crop`` block (decoding) and
    use one colour converter: call them from one worker thread at a time."""

    def __init__(
        self,
        video: SourceVideo | RawVideo,
        placement: framing.Placement,
        out_wh: tuple[int, int],
    ) -> None:
        assert video.info is not None
        self.video = video
        self.out_wh = out_wh
        self._placement = placement
        src_wh = (video.info.width, video.info.height)
        #: the source's samples pass through (same size, no rescale, a colour we can keep)
        self.passthrough = (
            video.info.colour is not None
            and placement == framing.SOURCE_PLACEMENT
            and framing.is_source_crop(src_wh, out_wh)
        )
        #: the colour the output is made in (the encoder's)
        self.colour: Colour = video.info.colour if self.passthrough else BT709  # type: ignore[assignment]
        self._converter = Converter(self.colour)

    def frame(self, slot: int) -> OutputFrame | None:
        picture = self.video.frame(slot)
        return None if picture is None else self.fit(picture)

    def fit(self, picture: Picture) -> OutputFrame:
        ow, oh = self.out_wh
        if self.passthrough and picture.i420 is not None:
            return OutputFrame(picture.i420)  # shared with the video's cache: never written
        rgb = picture_rgb(picture, self._converter)
        fitted = framing.render_fitted(rgb, self._placement, self.out_wh)
        assert fitted.shape == (oh, ow, 3)
        return OutputFrame(self._converter.to_i420(fitted), fitted)

    def crop(self, frame: OutputFrame, window: Box, *, i420: bool = False) -> np.ndarray:
        """What the model sees of an output frame: the RGB of ``window`` (even edges), or
        with ``i420`` its samples as they are (packed I420 in ``colour``: half the bytes, no
        conversion here)."""
        x0, y0, x1, y1 = window
        if i420:
            return yuv.crop(frame.i420, window)
        if frame.rgb is not None:
            return frame.rgb[y0:y1, x0:x1].copy()
        return self._converter.to_rgb(frame.i420, window)


class FaceWindow:
    """The part of each frame the model gets: around the face it last reported."""

    def __init__(self, out_wh: tuple[int, int], face_box: tuple[float, ...] | None) -> None:
        self._wh = out_wh
        self._face: tuple[float, float, float] | None = None  # centre x, y and side
        self.window: Box = (0, 0, out_wh[0] - out_wh[0] % 2, out_wh[1] - out_wh[1] % 2)
        if face_box is not None:
            self._place(face_box)

    def seen(self, boxes: np.ndarray | None, found: np.ndarray | None) -> None:
        """The model's report on its latest frames: face boxes (n, 4), 0 rows where none."""
        if boxes is None or not len(boxes):
            return
        if found is not None and not bool(found[-1]):
            self._face = None
            w, h = self._wh
            self.window = (0, 0, w - w % 2, h - h % 2)  # lost: let the model search everywhere
            return
        box = tuple(float(v) for v in boxes[-1])
        if box[2] <= box[0] or box[3] <= box[1]:
            return
        cx, cy, side = (
            (box[0] + box[2]) / 2,
            (box[1] + box[3]) / 2,
            max(box[2] - box[0], box[3] - box[1]),
        )
        if self._face is not None:
            fside = self._face[2]
            x0, y0, x1, y1 = self.window
            reach = DRIFT * min(x1 - x0, y1 - y0)
            steady = abs(cx - (x0 + x1) / 2) < reach and abs(cy - (y0 + y1) / 2) < reach
            if steady and abs(side / max(fside, 1.0) - 1) < SIZE_CHANGE:
                return
        self._place(box)

    def _place(self, box: tuple[float, ...]) -> None:
        x0, y0, x1, y1 = box[:4]
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        self._face = (cx, cy, side)
        w, h = self._wh
        span = max(MIN_WINDOW, WINDOW_SCALE * side)
        ww, wh = min(w, round(span)) & ~1, min(h, round(span)) & ~1
        wx = int(np.clip(round(cx - ww / 2), 0, w - ww)) & ~1
        wy = int(np.clip(round(cy - wh / 2), 0, h - wh)) & ~1
        self.window = (wx, wy, wx + ww, wy + wh)


def picture_rgb(picture: Picture, converter: Converter) -> np.ndarray:
    """A picture's RGB at the source's size."""
    if picture.rgb is not None:
        return picture.rgb
    assert picture.i420 is not None
    return converter.to_rgb(picture.i420)


@dataclass
class Waiting:
    """An output frame sent to the model, with the window and crop it was sent with (RGB
    (h, w, 3), or packed I420 (h * 3 / 2, w))."""

    frame: OutputFrame
    window: Box
    crop: np.ndarray
    #: the source slot (frame) it shows
    slot: int = -1


class InFlight:
    """Output frames between the model feed and the encoder, bounded in number (IN_FLIGHT_*,
    START_IN_FLIGHT)."""

    def __init__(self, out_wh: tuple[int, int], fps: float) -> None:
        frame_bytes = out_wh[0] * out_wh[1] * 3 // 2
        by_time = round(IN_FLIGHT_SECONDS * fps)
        self.limit = max(MIN_IN_FLIGHT, min(by_time, IN_FLIGHT_BYTES // max(1, frame_bytes)))
        self._frames: dict[int, Waiting] = {}
        self._taken = 0
        self._room = asyncio.Condition()

    async def wait_room(self) -> None:
        async with self._room:
            await self._room.wait_for(
                lambda: len(self._frames) < min(self.limit, START_IN_FLIGHT + self._taken)
            )

    def add(self, index: int, waiting: Waiting) -> None:
        self._frames[index] = waiting

    async def take(self, first: int, count: int) -> list[Waiting]:
        taken = [self._frames.pop(first + k) for k in range(count)]
        self._taken += count
        async with self._room:
            self._room.notify_all()
        return taken

    def clear(self) -> None:
        self._frames.clear()


@dataclass
class LipsyncFrames:
    """What a lipsync generation's stages share about its frames."""

    source: FittedSource
    window: FaceWindow
    in_flight: InFlight

    def close(self) -> None:
        self.in_flight.clear()
        self.source.video.close()
