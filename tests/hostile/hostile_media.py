"""Valid seed media for the hostile corpus, made at test time (espeak-ng + ffmpeg), and the
ways the corpus breaks them."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

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
