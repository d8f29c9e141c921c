"""PNG, JPEG and WebP files read in Python before FFmpeg sees them.

A portrait file is untrusted bytes. Each format is walked here chunk by chunk (segment by
segment for JPEG), in time linear in the file's size and with no decompression, to find

* the size of the picture the decoder will really produce: a WebP's VP8X canvas may lie about
  the VP8/VP8L bitstream inside it, so the size comes from the bitstream's own header;
* the EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF), read from IFD0 only;
* a copy that holds only what decoding needs: PNG IHDR, PLTE, tRNS, IDAT, IEND; JPEG's tables,
  frame and scan segments (APP0/JFIF and APP14/Adobe, which say how to read the colours); a
  WebP's one bitstream with its alpha. Text, ICC profiles, EXIF, XMP and unknown chunks are
  dropped, so FFmpeg never inflates a zTXt/iTXt/iCCP chunk (a few kilobytes can hold
  gigabytes) nor keeps any metadata;
* for animated files (APNG, animated WebP), the first picture: the PNG default image, the
  first ANMF frame of a WebP.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from a2v_server.errors import InvalidInput
from a2v_server.media.orientation import UPRIGHT, exif_orientation

ACCEPTED_IMAGE_FORMATS = "PNG, JPEG or WebP"
#: demuxer -> the format's name in messages
_FORMAT_NAMES = {"png_pipe": "PNG", "jpeg_pipe": "JPEG", "webp_pipe": "WebP"}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the PNG chunks a decoder needs for the pixels; everything else is metadata
_PNG_KEEP = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
_PNG_CHUNK = struct.Struct(">I4s")

# JPEG start-of-frame markers that carry the dimensions (all SOFn except DHT/JPG/DAC)
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_SOS, _JPEG_EOI, _JPEG_APP1, _JPEG_COM = 0xDA, 0xD9, 0xE1, 0xFE
#: a marker inside entropy-coded data: 0xFF not followed by a stuffed 0, a restart or a fill byte
_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_FILL = re.compile(rb"\xff+")
#: real files have tens of segments (hundreds for progressive ones): more is an attack on time
_JPEG_MAX_SEGMENTS = 20_000
#: progressive JPEGs have about 10 scans (passes over the whole picture), 20-odd at most; each
#: one costs the decoder a walk over every block, so thousands are an attack on time
_JPEG_MAX_SCANS = 100

_RIFF_CHUNK = struct.Struct("<4sI")
_VP8X_ALPHA = 0x10
_WEBP_WANTED = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANMF", b"EXIF"})


def invalid(reason: str) -> InvalidInput:
    return InvalidInput(
        f"could not decode the image: {reason}; send a {ACCEPTED_IMAGE_FORMATS} file",
        field="image",
    )


@dataclass(frozen=True)
class StillImage:
    """What FFmpeg will be given, and what it should make of it."""

    demuxer: str  # png_pipe, jpeg_pipe or webp_pipe
    data: bytes  # the picture alone, metadata dropped
    width: int  # as stored (before orientation), from the bitstream's own header
    height: int
    orientation: int = UPRIGHT  # EXIF code, 1..8
    animated: bool = False  # only the first picture is in ``data``
    #: why the file cannot be decoded although its size is known (checked after the size)
    broken: str = ""

    @property
    def format_name(self) -> str:
        return _FORMAT_NAMES[self.demuxer]


def detect(data: bytes) -> str:
    """The FFmpeg demuxer for ``data`` (from its magic bytes) or InvalidInput."""
    if data.startswith(_PNG_MAGIC):
        return "png_pipe"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg_pipe"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp_pipe"
    raise invalid("unsupported or unrecognised format")


def read_still(data: bytes) -> StillImage:
    """Walk a PNG, JPEG or WebP file: its real picture size, orientation and bare picture."""
    demuxer = detect(data)
    reader = {"png_pipe": _png, "jpeg_pipe": _jpeg, "webp_pipe": _webp}[demuxer]
    try:
        return reader(data)
    except (struct.error, IndexError, ValueError) as exc:  # a field cut short: truncated
        name = _FORMAT_NAMES[demuxer]
        raise invalid(f"corrupt or truncated {name} file") from exc


# --- PNG -----------------------------------------------------------------------------------------
def _png(data: bytes) -> StillImage:
    if len(data) < 33 or data[12:16] != b"IHDR" or data[8:12] != b"\0\0\0\x0d":
        raise invalid("truncated PNG header")
    width, height = struct.unpack(">II", data[16:24])
    view = memoryview(data)
    out = bytearray(view[:8])
    orientation, exif_seen, has_idat, animated = UPRIGHT, False, False, False
    pos, size = 8, len(data)
    while pos + 8 <= size:
        length, kind = _PNG_CHUNK.unpack_from(data, pos)
        end = pos + 12 + length
        if kind in _PNG_KEEP:
            if kind != b"IHDR" or pos == 8:  # a second IHDR is not a PNG
                out += view[pos : min(end, size)]
            has_idat = has_idat or kind == b"IDAT"
            if kind == b"IEND":
                break
        elif kind == b"eXIf" and not exif_seen:
            exif_seen = True
            orientation = exif_orientation(view[pos + 8 : min(pos + 8 + length, size)])
        elif kind == b"acTL":
            animated = True  # APNG: the default image (IDAT) is the first picture
        pos = end
    broken = "" if has_idat else "corrupt PNG data: the file ends before its picture data"
    return StillImage("png_pipe", bytes(out), width, height, orientation, animated, broken)


# --- JPEG ----------------------------------------------------------------------------------------
def _jpeg_drops(marker: int) -> bool:
    """APP1..APP13, APP15 and comments: metadata (EXIF, XMP, ICC, thumbnails, vendor data).
    APP0 (JFIF) and APP14 (Adobe) stay: they say how to read the colours."""
    return 0xE1 <= marker <= 0xED or marker in (0xEF, _JPEG_COM)


def _jpeg(data: bytes) -> StillImage:
    view = memoryview(data)
    out = bytearray(b"\xff\xd8")
    size: tuple[int, int] | None = None
    orientation: int | None = None
    scans = 0
    pos, end, segments = 2, len(data), 0
    while pos < end:
        segments += 1
        if segments > _JPEG_MAX_SEGMENTS:
            raise invalid(f"corrupt JPEG data: more than {_JPEG_MAX_SEGMENTS} segments")
        if data[pos] != 0xFF:
            # stray bytes between segments: skip to the next marker, as libjpeg does
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        if pos + 1 >= end:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill bytes before a marker
            pos = _JPEG_FILL.match(data, pos).end() - 1  # type: ignore[union-attr]
            continue
        if marker in (0x00, 0xD8):  # stray stuffing, stray start of image
            pos += 2
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            out += view[pos : pos + 2]
            pos += 2
            continue
        if marker == _JPEG_EOI:
            out += b"\xff\xd9"
            break
        if pos + 4 > end:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise invalid("corrupt JPEG marker structure")
        stop = pos + 2 + length
        if marker in _JPEG_SOF:
            if stop > end or length < 7:
                break
            height, width = struct.unpack_from(">HH", data, pos + 5)
            if size is None:
                size = (width, height)
            elif size != (width, height):
                raise invalid(
                    f"corrupt JPEG data: two frame headers disagree on the size "
                    f"({size[0]}x{size[1]} and {width}x{height})"
                )
        if marker == _JPEG_APP1 and orientation is None and data[pos + 4 : pos + 10] == b"Exif\0\0":
            orientation = exif_orientation(view[pos + 10 : min(stop, end)])
        if not _jpeg_drops(marker):
            out += view[pos : min(stop, end)]
        pos = stop
        if marker == _JPEG_SOS:
            if size is None:
                break  # scan data before any frame header: not a JPEG we can read
            scans += 1
            if scans > _JPEG_MAX_SCANS:
                raise invalid(
                    f"the JPEG has more than {_JPEG_MAX_SCANS} scans (progressive passes); save "
                    "it again as a standard JPEG"
                )
            found = _JPEG_MARKER_IN_SCAN.search(data, pos)
            stop = found.start() if found else end
            out += view[pos:stop]
            pos = stop
    if size is None:
        raise invalid("no JPEG frame header found (truncated or corrupt file)")
    broken = "" if scans else "corrupt JPEG data: the file ends before its picture data"
    width, height = size
    return StillImage("jpeg_pipe", bytes(out), width, height, orientation or UPRIGHT, broken=broken)


# --- WebP ----------------------------------------------------------------------------------------
@dataclass
class _WebPParts:
    """The first chunk of each kind that matters, as (payload, complete?)."""

    image: tuple[bytes, memoryview, bool] | None = None  # (b"VP8 " | b"VP8L", payload, whole)
    alpha: memoryview | None = None
    frame: tuple[memoryview, bool] | None = None  # the first ANMF
    exif: memoryview | None = None


def _walk_riff(view: memoryview, pos: int, stop: int, parts: _WebPParts) -> None:
    """Record the first VP8/VP8L, ALPH, ANMF and EXIF chunks in ``view[pos:stop]``."""
    unpack = _RIFF_CHUNK.unpack_from
    while pos + 8 <= stop:
        kind, length = unpack(view, pos)
        body = pos + 8
        pos = body + length + (length & 1)
        if kind not in _WEBP_WANTED:
            continue
        whole = body + length <= stop
        payload = view[body : min(body + length, stop)]
        if kind in (b"VP8 ", b"VP8L") and parts.image is None:
            parts.image = (kind, payload, whole)
        elif kind == b"ALPH" and parts.alpha is None and parts.image is None:
            parts.alpha = payload  # alpha belongs to the bitstream that follows it
        elif kind == b"ANMF" and parts.frame is None:
            parts.frame = (payload, whole)
        elif kind == b"EXIF" and parts.exif is None:
            parts.exif = payload


def _vp8_size(payload: memoryview) -> tuple[int, int]:
    head = bytes(payload[:10])
    if len(head) < 10 or head[0] & 1 or head[3:6] != b"\x9d\x01\x2a":
        raise invalid("corrupt WebP data: the VP8 picture header is damaged")
    width, height = struct.unpack("<HH", head[6:10])
    return width & 0x3FFF, height & 0x3FFF


def _vp8l_size(payload: memoryview) -> tuple[int, int]:
    head = bytes(payload[:5])
    if len(head) < 5 or head[0] != 0x2F or head[4] >> 5:
        raise invalid("corrupt WebP data: the lossless (VP8L) picture header is damaged")
    (bits,) = struct.unpack("<I", head[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1


def _riff(*chunks: tuple[bytes, bytes | memoryview]) -> bytes:
    body = bytearray(b"WEBP")
    for kind, payload in chunks:
        body += _RIFF_CHUNK.pack(kind, len(payload))
        body += payload
        if len(payload) & 1:
            body += b"\0"
    return b"RIFF" + struct.pack("<I", len(body)) + bytes(body)


def _webp(data: bytes) -> StillImage:
    if len(data) < 20:
        raise invalid("truncated or corrupt WebP header")
    view = memoryview(data)
    (riff_size,) = struct.unpack_from("<I", data, 4)
    stop = min(len(data), 8 + riff_size)
    parts = _WebPParts()
    _walk_riff(view, 12, stop, parts)
    orientation = exif_orientation(parts.exif) if parts.exif is not None else UPRIGHT
    animated = parts.frame is not None
    if parts.frame is not None:  # animated: the first frame's own bitstream and alpha
        frame, whole = parts.frame
        if len(frame) < 16 or not whole:
            raise invalid("corrupt WebP data: the first animation frame is truncated")
        parts = _WebPParts()
        _walk_riff(frame, 16, len(frame), parts)
    if parts.image is None:
        raise invalid("corrupt WebP data: the file holds no picture (truncated?)")
    kind, payload, whole = parts.image
    if not whole:
        raise invalid("corrupt WebP data: the picture data is truncated")
    width, height = (_vp8l_size if kind == b"VP8L" else _vp8_size)(payload)
    if not width or not height:
        raise invalid(f"the image declares an empty size {width}x{height}")
    if kind == b"VP8L":
        clean = _riff((kind, payload))
    else:
        if parts.alpha is None:
            clean = _riff((kind, payload))
        else:
            canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
            vp8x = bytes([_VP8X_ALPHA, 0, 0, 0]) + canvas
            clean = _riff((b"VP8X", vp8x), (b"ALPH", parts.alpha), (kind, payload))
    return StillImage("webp_pipe", clean, width, height, orientation, animated)
