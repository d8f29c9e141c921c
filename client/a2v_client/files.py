"""Input files checked before anything is sent: they exist, are files, can be read, and hold a
format the server takes.

The format is told from the file's first bytes with the server's own allowlists (``media/`` in
the server: ``detect_audio_format``, image_files ``detect``, ``detect_video_format``; a unit test
keeps the two in step), so a file the server would refuse is refused here, with its name, before
a stream is opened. The errors are ``FileNotFoundError``, ``IsADirectoryError``,
``PermissionError`` (all ``OSError``) and ``InputFormatError`` (a ``ValueError``); their text
starts with ``label``, e.g. "audio file 'nope.wav': ...", so the CLI can name its option instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import A2VClientError

AUDIO_FORMATS = "WAV, MP3, M4A/AAC, Ogg (Opus, Vorbis), FLAC or WebM"
IMAGE_FORMATS = "PNG, JPEG or WebP"
VIDEO_FORMATS = "MP4, MOV or WebM"
_ACCEPTED = {"audio": AUDIO_FORMATS, "image": IMAGE_FORMATS, "video": VIDEO_FORMATS}
#: bytes read to tell the format
HEAD_BYTES = 16


class InputFormatError(A2VClientError, ValueError):
    """An input file whose first bytes match none of the formats its kind accepts: a
    ``ValueError``, and an ``A2VClientError`` with code INVALID_ARGUMENT as the server would
    answer. ``other_kind``: the kind it is instead ("audio", "image", "video"), when it is one.
    """

    def __init__(self, kind: str, message: str, other_kind: str | None = None) -> None:
        super().__init__("INVALID_ARGUMENT", message, [(kind, message)])
        self.other_kind = other_kind


def audio_format(head: bytes) -> str | None:
    """The audio format of a file starting with ``head``, as the server tells it, or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/Matroska"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:3] == b"ID3":
        return "MP3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:
            return "AAC (ADTS)"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
            return "MP3"
    return None


def image_format(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def video_format(head: bytes) -> str | None:
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/Matroska"
    return None


_DETECT = {"audio": audio_format, "image": image_format, "video": video_format}
#: file name extensions of each kind: a file named so goes to the server even when its first
#: bytes are not recognised here (the server's decoder then says what is wrong with it)
EXTENSIONS = {
    "audio": {
        ".wav", ".wave", ".mp3", ".m4a", ".aac", ".mp4", ".ogg", ".oga", ".opus", ".flac",
        ".webm", ".weba", ".mka", ".mkv", ".mov",
    },
    "image": {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp"},
    "video": {".mp4", ".m4v", ".mov", ".webm", ".mkv"},
}  # fmt: skip
_A = {"audio": "an audio", "image": "an image", "video": "a video"}


#: pictures the server does not take, told apart for the message
_OTHER_IMAGES = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\0": "TIFF",
    b"MM\0*": "TIFF",
}
#: ISO BMFF brands of still pictures (an iPhone's HEIC, AVIF): "ftyp" like an MP4, but a photo
_PICTURE_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")


def other_image(head: bytes) -> str | None:
    """The name of a picture format the server does not take (GIF, HEIC, ...), or None."""
    if head[4:8] == b"ftyp" and head[8:12] in _PICTURE_BRANDS:
        return "HEIC/AVIF"
    return next((name for magic, name in _OTHER_IMAGES.items() if head.startswith(magic)), None)


def what_it_is(head: bytes) -> str:
    """A short description of a file's format for an error message ("a PNG image", ...)."""
    if not head:
        return "it is empty"
    if (name := other_image(head)) is not None:
        return f"it is a {name} image"
    if (name := image_format(head)) is not None:
        return f"it is a {name} image"
    if (name := video_format(head)) is not None:
        return f"it is an {name} file"
    if (name := audio_format(head)) is not None:
        return f"it is {name} audio"
    if head.lstrip()[:1] in (b"{", b"<") or head.isascii():
        return "it looks like text"
    return "its first bytes match none of them"


def check_input_file(path: str | Path, kind: str, label: str | None = None) -> str:
    """Check that ``path`` is a readable ``kind`` ("audio", "image", "video") file the server
    takes; returns its format name ("" for a file named like one whose first bytes are not
    recognised: the server decides). ``label`` starts the error texts (default
    "<kind> file '<path>'")."""
    label = label or f"{kind} file {str(path)!r}"
    p = Path(path)
    if not p.exists():
        where = p.parent if str(p.parent) not in ("", ".") else None
        if str(path).startswith("~"):
            hint = "~ was not expanded (quoted?): give the full path"
        elif where is not None and not where.exists():
            hint = f"the folder {str(where)!r} does not exist either"
        else:
            hint = "check the name and the working directory"
        raise FileNotFoundError(f"{label}: no such file ({hint})")
    if p.is_dir():
        raise IsADirectoryError(f"{label}: is a folder; give {_A[kind]} file")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{label}: not readable (permission denied)")
    try:
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as error:
        raise type(error)(f"{label}: cannot be read ({error.strerror or error})") from None
    if _DETECT[kind](head) is None and p.suffix.lower() in EXTENSIONS[kind] and head:
        return ""  # named like one: the server's decoder says what is wrong with it
    return _check_head(head, kind, label)


def check_input_bytes(data: bytes, kind: str, label: str | None = None) -> str:
    """As ``check_input_file`` for data in memory."""
    return _check_head(data[:HEAD_BYTES], kind, label or f"the {kind} data")


def _check_head(head: bytes, kind: str, label: str) -> str:
    name = _DETECT[kind](head)
    if name is None:
        other = None
        if other_image(head) is None:
            other = next((k for k, detect in _DETECT.items() if detect(head) is not None), None)
        raise InputFormatError(
            kind,
            f"{label}: not {_A[kind]} file the server takes ({what_it_is(head)}); "
            f"use {_ACCEPTED[kind]}",
            other,
        )
    return name
