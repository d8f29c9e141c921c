"""Hostile cases, round two: media. Registered into the corpus by importing this module."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from corpus import END, EXHAUSTED, INVALID, add, config, encoded, image, lipsync, with_portrait
from hostile_media import (
    EXIF_STORED,
    Media,
    animated_portrait,
    anmf,
    decode_rgb,
    displayed_video,
    encode_rgb,
    exif_block,
    exif_oriented_jpeg,
    png_chunk,
    png_metadata_bomb,
    png_with_chunks,
    video_frames,
    vp8_keyframe_header,
    vp8l_solid,
    vp8x,
    webp_chunk,
    webp_file,
    zlib_zeros,
)

from a2v.v1 import audio_to_video_pb2 as pb


def _upright(m: Media) -> np.ndarray:
    return decode_rgb(m.image["jpg"])


def _webp_with_alpha(m: Media) -> bytes:
    """The portrait as a lossy WebP with a transparent border (VP8X + ALPH + VP8)."""
    bgra = cv2.cvtColor(_upright(m), cv2.COLOR_RGB2BGRA)
    bgra[:16, :, 3] = bgra[-16:, :, 3] = bgra[:, :16, 3] = bgra[:, -16:, 3] = 0
    data = cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes()
    assert b"ALPH" in data
    return data


def _pieces(build: Callable[[Media], bytes]) -> Callable[[Media], list[pb.GenerateRequest]]:
    """config, the image from ``build`` in 4 MiB messages, good audio, end (for files over the
    message size limit but under the image byte limit)."""

    def stream(m: Media) -> list[pb.GenerateRequest]:
        data = build(m)
        parts = [image(data[i : i + 4 * 2**20]) for i in range(0, len(data), 4 * 2**20)]
        return [config(), *parts, *encoded(m.audio["wav"]), END]

    return stream


# --- issue 1: decompression bombs in image metadata ----------------------------------------------
# FFmpeg's PNG decoder inflated every zTXt/iTXt/iCCP chunk without a limit and kept the result
# (1 MB of PNG -> +2 GB). The chunk walker now gives FFmpeg only IHDR/PLTE/tRNS/IDAT/IEND: the
# portrait renders and nothing is inflated.
for _kind in ("zTXt", "iTXt", "iCCP"):
    add(
        f"media/png-{_kind}-bomb-1GiB",
        "OK",
        "",
        with_portrait(lambda m, k=_kind: png_metadata_bomb(m.image["png"], k)),
    )
add(  # 17 MB of PNG that would inflate to 16 GiB (in 4 MiB messages)
    "media/png-16-zTXt-bombs-16GiB",
    "OK",
    "",
    _pieces(
        lambda m: png_with_chunks(
            m.image["png"],
            *[png_chunk(b"zTXt", b"c%d\0\0" % i + zlib_zeros(1 << 30)) for i in range(16)],
        )
    ),
)
add(  # a million empty text chunks: the walk is linear and cheap
    "media/png-1M-empty-text-chunks",
    "OK",
    "",
    _pieces(lambda m: png_with_chunks(m.image["png"], png_chunk(b"tEXt", b"") * 1_000_000)),
)
add(
    "media/jpeg-300k-comment-segments",
    INVALID,
    "segments",
    with_portrait(lambda m: m.image["jpg"][:2] + b"\xff\xfe\0\x02" * 300_000 + m.image["jpg"][2:]),
)
add(  # each scan walks every block: a scan repeated 200 times is refused before decoding
    "media/jpeg-200-scans",
    INVALID,
    "more than 100 scans",
    with_portrait(
        lambda m: (
            m.image["jpg"][:-2]
            + m.image["jpg"][m.image["jpg"].rindex(b"\xff\xda") : -2] * 200
            + b"\xff\xd9"
        )
    ),
)

# A WebP sized by its VP8X (or ANMF) canvas was decoded in full before its real size was seen:
# the size now comes from the VP8/VP8L bitstream header, before FFmpeg runs.
add(
    "media/webp-vp8x-100x100-holds-vp8l-16000x16000",
    EXHAUSTED,
    "16000x16000",
    with_portrait(
        lambda m: webp_file(vp8x(100, 100, 0x10), webp_chunk(b"VP8L", vp8l_solid(16000, 16000)))
    ),
)
add(
    "media/webp-vp8x-100x100-holds-vp8-16000x16000",
    EXHAUSTED,
    "16000x16000",
    with_portrait(
        lambda m: webp_file(vp8x(100, 100), webp_chunk(b"VP8 ", vp8_keyframe_header(16000, 16000)))
    ),
)
add(
    "media/webp-anmf-100x100-holds-vp8l-16000x16000",
    EXHAUSTED,
    "16000x16000",
    with_portrait(
        lambda m: webp_file(
            vp8x(100, 100, 0x02),
            webp_chunk(b"ANIM", bytes(6)),
            anmf(webp_chunk(b"VP8L", vp8l_solid(16000, 16000)), width=100, height=100),
        )
    ),
)
add(  # within the pixel limit, decoded (one colour: no face)
    "media/webp-vp8l-2000x2000-one-colour",
    INVALID,
    "no face",
    with_portrait(lambda m: webp_file(webp_chunk(b"VP8L", vp8l_solid(2000, 2000)))),
)
add(
    "media/webp-vp8x-without-bitstream",
    INVALID,
    "holds no picture",
    with_portrait(lambda m: webp_file(vp8x(64, 64), webp_chunk(b"XMP ", b"<x/>"))),
)
add(
    "media/webp-vp8-partition-past-the-end",
    INVALID,
    "damaged or truncated",
    with_portrait(
        lambda m: webp_file(
            webp_chunk(
                b"VP8 ",
                (100_000 << 5 | 0x10).to_bytes(3, "little") + vp8_keyframe_header(64, 64)[3:],
            )
        )
    ),
)

# --- issue 11: animated images get their first picture (was "corrupt WEBP data") --------------
add(
    "media/webp-animated",
    "OK",
    "",
    with_portrait(lambda m: animated_portrait(m.speech.parent, "webp")),
)
add("media/apng", "OK", "", with_portrait(lambda m: animated_portrait(m.speech.parent, "apng")))
add(  # lossy with alpha (VP8X + ALPH + VP8), rebuilt without its metadata
    "media/webp-alpha-and-exif",
    "OK",
    "",
    with_portrait(
        lambda m: webp_file(
            _webp_with_alpha(m)[12:],
            webp_chunk(b"EXIF", exif_block(1)),
            webp_chunk(b"XMP ", b"<x/>" * 1000),
        )
    ),
)

# --- issue 8: EXIF orientation 1..8, mirrored ones included, in JPEG, PNG and WebP --------------
# Stored as a camera would, tagged with how to show it: upright, the face is found (2 and 4
# used to come out upside down: "no face found").
for _o in range(1, 9):
    add(
        f"media/jpeg-exif-orientation-{_o}",
        "OK",
        "",
        with_portrait(lambda m, o=_o: exif_oriented_jpeg(_upright(m), o)),
    )
add(
    "media/png-exif-orientation-4",
    "OK",
    "",
    with_portrait(
        lambda m: png_with_chunks(
            encode_rgb(EXIF_STORED[4](_upright(m)), ".png"), png_chunk(b"eXIf", exif_block(4))
        )
    ),
)
add(
    "media/webp-exif-orientation-7",
    "OK",
    "",
    with_portrait(
        lambda m: webp_file(
            encode_rgb(EXIF_STORED[7](_upright(m)), ".webp")[12:],
            webp_chunk(b"EXIF", exif_block(7, big_endian=False)),
        )
    ),
)
add(  # IFD0 offset past the end, count larger than the block: ignored, shown as stored
    "media/jpeg-exif-broken",
    "OK",
    "",
    with_portrait(
        lambda m: (
            m.image["jpg"][:2]
            + b"\xff\xe1\0\x14Exif\0\0MM\0*\xff\xff\xff\xf0\xff\xff"
            + m.image["jpg"][2:]
        )
    ),
)

# Lipsync videos stored turned or mirrored, with a display matrix saying how to show them.
_VIDEO_ORIENTATIONS = {
    "rotated-90": (90, False, "mp4"),
    "rotated-180": (180, False, "mp4"),
    "rotated-270": (270, False, "mp4"),
    "mirrored": (0, True, "mp4"),
    "rotated-90-mirrored": (90, True, "mp4"),
    "matroska-rotated-270-mirrored": (270, True, "matroska"),
}
for _name, (_degrees, _hflip, _fmt) in _VIDEO_ORIENTATIONS.items():
    add(
        f"media/video-{_name}",
        "OK",
        "",
        lipsync(
            lambda m, d=_degrees, h=_hflip, f=_fmt: displayed_video(
                video_frames(m.video), d, hflip=h, fmt=f
            )
        ),
    )
