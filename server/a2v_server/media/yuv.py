"""YUV 4:2:0 pictures: the colour matrix, RGB <-> I420, and pasting an RGB region into one.

Decoders give YUV and H.264 takes YUV; the models work in RGB. Lipsync keeps the source's YUV
as it is and converts only the face region: to RGB for the model, and the part the model
changed back to YUV, with one colour matrix both ways, so every other pixel is the source's
own sample (only the H.264 re-encode touches it).

I420 here is PyAV's packed ``yuv420p`` ndarray: Y, then U, then V, each plane row-major, shape
``(height * 3 // 2, width)`` (even sizes only).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

#: AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic numbers (libavutil/pixfmt.h)
_BT709, _UNSPECIFIED, _BT470BG, _SMPTE170M = 1, 2, 5, 6
#: around a changed region: pixels pasted, and pixels converted but not pasted (paste_rgb)
REGION_PAD, REGION_MARGIN = 4, 8


@dataclass(frozen=True)
class Colour:
    """How an I420 picture's samples map to RGB (the matrix; limited range only), and the
    colour tags an encoder writes for it (colorspace, primaries, transfer: AVCOL_* numbers)."""

    matrix: Colorspace
    tags: tuple[int, int, int]

    @property
    def matrix_number(self) -> int:
        """The matrix as an AVCOL_SPC number (1 BT.709, 6 BT.601): the lipsync model's
        COLOUR_MATRIX."""
        return _BT709 if self.matrix == Colorspace.ITU709 else _SMPTE170M


#: what a2v writes when it makes the YUV itself: BT.709, limited range
BT709 = Colour(Colorspace.ITU709, (_BT709, _BT709, _BT709))


def colour_of(frame: av.VideoFrame) -> Colour | None:
    """The Colour under which a decoded frame's YUV can be kept as it is, or None when it must
    be converted (not 8-bit 4:2:0, full range, an unusual matrix).

    An untagged frame keeps its tags (players guess the same way for the output as for the
    source); its samples are read as BT.709 from 720 lines up, BT.601 below, as players guess.
    """
    if frame.format.name != "yuv420p" or int(frame.color_range) == int(ColorRange.JPEG):
        return None
    return _colour(frame)


def converted_colour(frame: av.VideoFrame) -> Colour | None:
    """The Colour a YUV frame that ``colour_of`` cannot keep is converted to, once, as it is
    decoded (``to_kept``): 8-bit limited-range 4:2:0 in the frame's own matrix, with its tags.
    None for RGB, paletted and Bayer pictures and unusual matrices (made RGB instead).

    10-bit and 4:2:2 / 4:4:4 cameras and intermediates (ProRes, DNxHR, phones' 10-bit SDR),
    full-range webcams (MJPEG) and phones: the H.264 clip is 8-bit 4:2:0 limited range, what
    browsers and players take, so their samples cannot pass as they are. Converted once here
    (swscale, 2-4 ms a 1080p frame on a 2-core EPYC), the picture then takes the kept-YUV path:
    only the face is converted to RGB and back. Made RGB instead, every 1080p frame cost
    3-7 ms to RGB and 11-14 ms back to I420, and a 1080p ProRes upload missed real time.
    """
    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer:
        return None
    return _colour(frame)


def sampling_of(frame: av.VideoFrame) -> str:
    """How a YUV frame is sampled, in the words of a camera's menu: "10-bit 4:2:2", "8-bit
    4:2:0 full range"."""
    fmt = frame.format
    bits = max(c.bits for c in fmt.components)
    if len(fmt.components) < 3:
        chroma = "monochrome"
    else:
        luma, blue = fmt.components[0], fmt.components[1]
        across = "4" if blue.width == luma.width else "2"
        down = across if blue.height == luma.height else "0"
        chroma = f"4:{across}:{down}"
    full = " full range" if _full_range(frame) else ""
    alpha = " with alpha" if len(fmt.components) == 4 else ""  # (dropped: H.264 has none)
    return f"{bits}-bit {chroma}{full}{alpha}"


def to_kept(
    reformatter: VideoReformatter,
    frame: av.VideoFrame,
    colour: Colour,
    size: tuple[int, int] | None = None,
) -> av.VideoFrame:
    """A YUV frame (``converted_colour``) as 8-bit limited-range yuv420p in ``colour``'s
    matrix, at ``size`` (area scaling) or its own."""
    width, height = size or (frame.width, frame.height)
    return reformatter.reformat(
        frame,
        width=width,
        height=height,
        format="yuv420p",
        src_colorspace=colour.matrix,
        dst_colorspace=colour.matrix,
        src_color_range=ColorRange.JPEG if _full_range(frame) else ColorRange.MPEG,
        dst_color_range=ColorRange.MPEG,
        interpolation="AREA",
        threads=1,
    )


def _full_range(frame: av.VideoFrame) -> bool:
    """Full-range samples: flagged in the stream (VP9, HEVC) or by the pixel format (yuvj*)."""
    return int(frame.color_range) == int(ColorRange.JPEG) or frame.format.name.startswith("yuvj")


def _colour(frame: av.VideoFrame) -> Colour | None:
    """A frame's matrix (untagged: as players guess) and tags; None for an unusual matrix."""
    space = int(frame.colorspace)
    if space == _BT709:
        matrix = Colorspace.ITU709
    elif space in (_BT470BG, _SMPTE170M):
        matrix = Colorspace.ITU601
    elif space == _UNSPECIFIED:
        matrix = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
    else:
        return None
    return Colour(matrix, (space, int(frame.color_primaries), int(frame.color_trc)))


def planes(i420: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Y, U, V views of packed I420 data."""
    flat = i420.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return [
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    ]


def pack(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Three planes (views of any layout) as one packed I420 array."""
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), np.uint8)
    target = planes(out, w, h)
    target[0][...], target[1][...], target[2][...] = y, u, v
    return out


def crop(i420: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The packed I420 of ``box`` (x0, y0, x1, y1, even edges) of a packed I420 picture."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    x0, y0, x1, y1 = box
    y, u, v = planes(i420, width, height)
    c = np.s_[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    return pack(y[y0:y1, x0:x1], u[c], v[c])


def paste(i420: np.ndarray, region: np.ndarray, at: tuple[int, int], under: np.ndarray) -> None:
    """Write the samples of ``region`` (packed I420) that differ from ``under`` (the same box
    as it was sent) into ``i420`` at ``at`` (x, y, even), in place. Only those samples:
    another face's changes in an overlapping box stay."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    rh, rw = region.shape[0] * 2 // 3, region.shape[1]
    x, y = at
    for plane, part, old, s in zip(
        planes(i420, width, height),
        planes(region, rw, rh),
        planes(under, rw, rh),
        (1, 2, 2),
        strict=True,
    ):
        differs = part != old
        target = plane[y // s : y // s + part.shape[0], x // s : x // s + part.shape[1]]
        target[differs] = part[differs]


class KeptPicture:
    """One yuv420p picture written in place, frame after frame.

    A new picture per frame costs its page faults: with the server's mmap threshold (main.py)
    every frame-sized buffer is fresh memory, e.g. 4.6 ms for a 1080p picture against 0.3 ms
    for copying the samples into a kept one (measured here). Whatever reads the picture (x264,
    swscale) has copied or converted it by the time its call returns.
    """

    def __init__(self, width: int, height: int) -> None:
        self.frame = av.VideoFrame(width, height, "yuv420p")
        #: the planes without their row padding, writable views of the frame's buffers
        self._planes = [
            np.frombuffer(memoryview(p), np.uint8).reshape(p.height, -1)[:, : p.width]
            for p in self.frame.planes
        ]

    @property
    def size(self) -> tuple[int, int]:
        return self.frame.width, self.frame.height

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> av.VideoFrame:
        """The picture holding these planes (views of any layout)."""
        for target, source in zip(self._planes, (y, u, v), strict=True):
            target[...] = source
        return self.frame


class Converter:
    """RGB <-> I420 under one Colour, with one swscale context each way.

    One converter per stream, single-threaded: frame.reformat() would build a new swscale
    context with its own thread pool for every frame (measured at 512x512: 1.15 ms per frame
    that way, 0.64 ms with one), and concurrent streams already keep the cores busy. Not
    thread-safe: one thread uses it.
    """

    def __init__(self, colour: Colour = BT709) -> None:
        self.colour = colour
        self._to_yuv = VideoReformatter()
        self._to_rgb = VideoReformatter()
        #: to_rgb's input picture, kept while the box keeps its size
        self._yuv_picture: KeptPicture | None = None

    def to_i420(self, rgb: np.ndarray) -> np.ndarray:
        """RGB (even height and width) -> packed I420."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = self._to_yuv.reformat(
            frame,
            format="yuv420p",
            src_colorspace=self.colour.matrix,
            dst_colorspace=self.colour.matrix,
            dst_color_range=ColorRange.MPEG,
            threads=1,
        )
        return frame.to_ndarray()

    def to_rgb(self, i420: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The RGB pixels of ``box`` (x0, y0, x1, y1, even; the whole picture without one) of
        a packed I420 picture."""
        height = i420.shape[0] * 2 // 3
        width = i420.shape[1]
        x0, y0, x1, y1 = box or (0, 0, width, height)
        y, u, v = planes(i420, width, height)
        if self._yuv_picture is None or self._yuv_picture.size != (x1 - x0, y1 - y0):
            self._yuv_picture = KeptPicture(x1 - x0, y1 - y0)
        picture = self._yuv_picture.write(
            y[y0:y1, x0:x1],
            u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
            v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
        )
        frame = self._to_rgb.reformat(
            picture,
            format="rgb24",
            src_colorspace=self.colour.matrix,
            src_color_range=ColorRange.MPEG,
            dst_colorspace=self.colour.matrix,
            threads=1,
        )
        return frame.to_ndarray()

    def paste_rgb(
        self,
        i420: np.ndarray,
        rgb: np.ndarray,
        rgb_origin: tuple[int, int],
        changed: tuple[int, int, int, int],
    ) -> None:
        """Write the ``changed`` box (x0, y0, x1, y1 in picture pixels) of ``rgb`` (a part of
        the picture whose top-left pixel is at ``rgb_origin``) into ``i420``, in place.

        swscale's chroma filter reaches past the 2x2 block of a chroma sample, so a change moves
        chroma samples around it too: a band of REGION_PAD pixels around the box is pasted (even
        edges for 4:2:0), converted with up to REGION_MARGIN real neighbours around it rather
        than the replicated edge pixels of a cut-out (measured: chroma off by up to 7 without
        the band and margin). Both stay inside ``rgb``.
        """
        height = i420.shape[0] * 2 // 3
        width = i420.shape[1]
        ox, oy = rgb_origin
        rh, rw = rgb.shape[:2]
        # the picture area the RGB covers, even-aligned inwards
        ax0, ay0 = (ox + 1) & ~1, (oy + 1) & ~1
        ax1, ay1 = min(width, ox + rw) & ~1, min(height, oy + rh) & ~1
        p = REGION_PAD
        x0, y0, x1, y1 = (int(v) for v in changed)
        if x1 <= x0 or y1 <= y0:
            return
        x0, y0 = max(ax0, (x0 - p) & ~1), max(ay0, (y0 - p) & ~1)
        x1, y1 = min(ax1, (x1 + p + 1) & ~1), min(ay1, (y1 + p + 1) & ~1)
        if x1 <= x0 or y1 <= y0:
            return
        m = REGION_MARGIN
        ex0, ey0 = max(ax0, x0 - m), max(ay0, y0 - m)
        ex1, ey1 = min(ax1, x1 + m), min(ay1, y1 + m)
        part = self.to_i420(rgb[ey0 - oy : ey1 - oy, ex0 - ox : ex1 - ox])
        for plane, sub, s in zip(
            planes(i420, width, height),
            planes(part, ex1 - ex0, ey1 - ey0),
            (1, 2, 2),
            strict=True,
        ):
            plane[y0 // s : y1 // s, x0 // s : x1 // s] = sub[
                (y0 - ey0) // s : (y1 - ey0) // s, (x0 - ex0) // s : (x1 - ex0) // s
            ]
