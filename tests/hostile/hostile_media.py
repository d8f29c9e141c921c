"""Valid seed media for the hostile corpus, made at test time (espeak-ng + ffmpeg), and the
ways the corpus breaks them."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from media import PORTRAIT, encode, run, speech_wav

#: audio seeds: corpus name -> (file suffix, ffmpeg encoder arguments)
AUDIO_FORMATS = {
    "wav": (".wav", ("-c:a", "pcm_s16le")),
    "mp3": (".mp3", ("-c:a", "libmp3lame")),
    "m4a": (".m4a", ("-c:a", "aac")),
    "opus": (".ogg", ("-c:a", "libopus")),
    "vorbis": (".ogg", ("-c:a", "libvorbis")),
    "flac": (".flac", ("-c:a", "flac")),
    "webm": (".webm", ("-c:a", "libopus")),
}
IMAGE_FORMATS = ("png", "jpg", "webp")


@dataclass(frozen=True)
class Media:
    speech: Path  # 16 kHz mono WAV on disk (the playlist cases point at it)
    audio: dict[str, bytes]
    image: dict[str, bytes]  # 256x256 portraits
    video: bytes  # 1 s 10 fps H.264 MP4 of the portrait
    tiny_video: bytes  # the same at 8x8 pixels
    mp3_44k: bytes  # audio["mp3"] at 44.1 kHz: appended, the rate changes mid-stream
    audio_only_mp4: bytes
    gif: bytes
    bmp: bytes


def make_media(folder: Path) -> Media:
    speech = speech_wav(folder / "speech.wav", "Hello there.", tail=0.1)
    audio = {}
    for name, (suffix, args) in AUDIO_FORMATS.items():
        audio[name] = encode(speech, folder / f"{name}{suffix}", "-ac", "1", *args).read_bytes()
    scaled = ("-vf", "scale=256:256")
    image = {
        fmt: encode(PORTRAIT, folder / f"portrait.{fmt}", *scaled).read_bytes()
        for fmt in (*IMAGE_FORMATS, "gif", "bmp")
    }
    video = folder / "speaker.mp4"
    run(
        "ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(PORTRAIT), "-t", "1",
        "-r", "10", "-vf", "scale=256:256", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video),
    )  # fmt: skip
    mp3_44k = encode(speech, folder / "speech44k.mp3", "-ar", "44100", "-c:a", "libmp3lame")
    tiny = encode(video, folder / "tiny.mp4", "-vf", "scale=8:8", "-c:v", "libx264")
    audio_only = encode(speech, folder / "audio_only.mp4", "-c:a", "aac")
    return Media(
        speech=speech,
        audio=audio,
        image={k: image[k] for k in IMAGE_FORMATS},
        video=video.read_bytes(),
        tiny_video=tiny.read_bytes(),
        mp3_44k=mp3_44k.read_bytes(),
        audio_only_mp4=audio_only.read_bytes(),
        gif=image["gif"],
        bmp=image["bmp"],
    )


# --- ways to break a file --------------------------------------------------------------------
def cut(data: bytes, where: int | float) -> bytes:
    """The first ``where`` bytes (an int) or that fraction of the file (a float)."""
    return data[: where if isinstance(where, int) else int(len(data) * where)]


def flip(data: bytes, where: int | float, count: int = 8) -> bytes:
    """``count`` bytes inverted from offset ``where`` (an int) or that fraction (a float)."""
    start = where if isinstance(where, int) else int(len(data) * where)
    out = bytearray(data)
    for i in range(start, min(start + count, len(out))):
        out[i] ^= 0xFF
    return bytes(out)


def png(width: int, height: int, pixels: bytes = b"\0") -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (the body need not match)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def wav_header(rate: int, channels: int, samples: int = 8000, bits: int = 16) -> bytes:
    """A PCM WAV with the given header fields and ``samples`` frames of quiet noise."""
    block = channels * bits // 8
    data = b"\x10\x00" * (samples * max(channels, 1))
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


# --- round two: images whose metadata or container lies, oriented pictures and videos -----------
def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body))
    return struct.pack(">I", len(body)) + kind + body + crc


def png_with_chunks(data: bytes, *chunks: bytes) -> bytes:
    """``data`` (a PNG) with ``chunks`` inserted right after its IHDR."""
    return data[:33] + b"".join(chunks) + data[33:]


@functools.lru_cache(maxsize=4)
def zlib_zeros(size: int) -> bytes:
    """A zlib stream that inflates to ``size`` zero bytes (a multiple of 1 MiB): ~1 KB per MiB.
    Built from one fully flushed 1 MiB block repeated (0.4 s for 1 GiB, not 5 s)."""
    piece = bytes(1 << 20)
    deflate = zlib.compressobj(9)
    head = deflate.compress(piece) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = deflate.compress(piece) + deflate.flush(zlib.Z_FULL_FLUSH)
    count, adler = size >> 20, 1
    for _ in range(count):
        adler = zlib.adler32(piece, adler)
    return head + body * (count - 1) + b"\x03\x00" + struct.pack(">I", adler)


def png_metadata_bomb(data: bytes, kind: str, inflated: int = 1 << 30) -> bytes:
    """``data`` (a PNG) with a zTXt, iTXt or iCCP chunk that inflates to ``inflated`` bytes."""
    z = zlib_zeros(inflated)
    bodies = {
        "zTXt": b"Comment\0\0" + z,  # keyword, method 0, zlib text
        "iTXt": b"Comment\0\1\0\0\0" + z,  # keyword, compressed, method, language, title
        "iCCP": b"icc\0\0" + z,  # profile name, method 0, zlib profile
    }
    return png_with_chunks(data, png_chunk(kind.encode(), bodies[kind]))


def webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def webp_file(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8x(width: int, height: int, flags: int = 0) -> bytes:
    """A VP8X chunk declaring a ``width`` x ``height`` canvas (flags: 0x10 alpha, 0x02 anim)."""
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return webp_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + size)


def vp8l_solid(width: int, height: int, argb: tuple[int, int, int, int] = (255, 90, 160, 220)):
    """A lossless WebP bitstream of one colour, any size, in 20 bytes: five prefix codes of one
    symbol each, which cost no bits per pixel (the decoder still fills every pixel)."""
    value, bits = 0, 0

    def put(field: int, count: int) -> None:
        nonlocal value, bits
        value |= (field & ((1 << count) - 1)) << bits
        bits += count

    put(0x2F, 8)  # signature
    put(width - 1, 14)
    put(height - 1, 14)
    put(1, 1)  # alpha used
    put(0, 3)  # version
    put(0, 1)  # no transform
    put(0, 1)  # no colour cache
    put(0, 1)  # no meta prefix codes
    alpha, red, green, blue = argb
    for symbol in (green, red, blue, alpha, 0):  # green, red, blue, alpha, distance codes
        put(1, 1)  # simple code
        put(0, 1)  # one symbol
        put(1, 1)  # of 8 bits
        put(symbol, 8)
    return value.to_bytes((bits + 7) // 8, "little")


def vp8_keyframe_header(width: int, height: int, tail: int = 64) -> bytes:
    """A lossy (VP8) key frame that declares ``width`` x ``height``; its data is filler."""
    size = struct.pack("<HH", width, height)
    return b"\x10\x02\x00\x9d\x01\x2a" + size + bytes(range(tail))


def anmf(*chunks: bytes, width: int, height: int, x: int = 0, y: int = 0) -> bytes:
    """An animation frame chunk of a ``width`` x ``height`` frame at (x, y), 100 ms."""
    head = b"".join(v.to_bytes(3, "little") for v in (x // 2, y // 2, width - 1, height - 1, 100))
    return webp_chunk(b"ANMF", head + b"\0" + b"".join(chunks))


def exif_block(orientation: int, big_endian: bool = True, *, entries: int = 0) -> bytes:
    """A TIFF block whose IFD0 holds the Orientation tag (after ``entries`` other tags)."""
    order = ">" if big_endian else "<"
    tags = [struct.pack(order + "HHI4s", 0x010E, 2, 4, b"abc\0")] * entries
    value = struct.pack(order + "H", orientation) + b"\0\0"
    tags.append(struct.pack(order + "HHI", 0x0112, 3, 1) + value)
    ifd = struct.pack(order + "H", len(tags)) + b"".join(tags) + b"\0\0\0\0"
    return (b"MM\0*" if big_endian else b"II*\0") + struct.pack(order + "I", 8) + ifd


def jpeg_with_exif(jpeg: bytes, orientation: int, **block) -> bytes:
    payload = b"Exif\0\0" + exif_block(orientation, **block)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


#: the stored pixels of an upright picture ``u`` for each EXIF orientation (what a camera
#: writes): showing them as the tag says gives ``u`` back
EXIF_STORED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],  # shown mirrored left-right
    3: lambda u: u[::-1, ::-1],  # shown turned 180 degrees
    4: lambda u: u[::-1],  # shown mirrored top-bottom
    5: lambda u: u.swapaxes(0, 1),  # shown mirrored along the main diagonal
    6: lambda u: np.rot90(u, 1),  # shown turned 90 degrees clockwise
    7: lambda u: np.rot90(u, 2).swapaxes(0, 1),  # shown mirrored along the other diagonal
    8: lambda u: np.rot90(u, -1),  # shown turned 90 degrees counter-clockwise
}


def encode_rgb(rgb: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    assert ok
    return buf.tobytes()


def exif_oriented_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """A JPEG that shows ``upright`` when its EXIF orientation is honoured."""
    stored = encode_rgb(EXIF_STORED[orientation](upright), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    return jpeg_with_exif(stored, orientation)


def decode_rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


def displayed_video(
    frames: list[np.ndarray], degrees: int, *, hflip: bool = False, fmt: str = "mp4"
) -> bytes:
    """An H.264 video (``fmt``: mp4 or matroska) whose display matrix turns its stored pixels
    ``degrees`` counter-clockwise and then mirrors them (``hflip``): shown, it is ``frames``."""
    buffer = io.BytesIO()
    stored = [np.rot90(f[:, ::-1] if hflip else f, -degrees // 90) for f in frames]
    height, width = stored[0].shape[:2]
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees, hflip=hflip)
        for picture in stored:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def video_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@functools.lru_cache(maxsize=2)
def animated_portrait(folder: Path, kind: str) -> bytes:
    """The 256x256 portrait as a 3-frame animation (its hue changes): ``webp`` or ``apng``."""
    out = folder / f"animated-portrait.{kind}"
    codec = (
        ("-c:v", "libwebp_anim", "-loop", "0") if kind == "webp" else ("-f", "apng", "-plays", "0")
    )
    run(
        "ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(PORTRAIT), "-t", "0.3",
        "-r", "10", "-vf", "scale=256:256,hue=h=t*300", *codec, str(out),
    )  # fmt: skip
    return out.read_bytes()
