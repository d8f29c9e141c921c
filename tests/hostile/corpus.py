"""The hostile corpus: malformed Generate streams and the status each must end with.

Each case builds its request stream from valid seed media (``hostile_media``) at test time.
``code`` is the gRPC status name the stream must end with ("OK": it must render, e.g. clipped
PCM or a file cut after its first frames, whose audio that arrived is used); ``phrase`` must
appear in the status message (it names the field or the fix).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from hostile_media import AUDIO_FORMATS, IMAGE_FORMATS, Media, cut, flip, png, wav_header

from a2v.v1 import audio_to_video_pb2 as pb

Build = Callable[[Media], Iterable[pb.GenerateRequest | bytes]]


@dataclass(frozen=True)
class Case:
    build: Build
    code: str
    phrase: str = ""


CASES: dict[str, Case] = {}
INVALID, PRECONDITION, EXHAUSTED = "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"
END = pb.GenerateRequest(end=pb.EndOfInput())
_PIECE = 64 * 1024


def case(name: str, code: str, phrase: str = "") -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        assert name not in CASES, name
        CASES[name] = Case(build, code, phrase)
        return build

    return register


def add(name: str, code: str, phrase: str, build: Build) -> None:
    case(name, code, phrase)(build)


# --- message builders ----------------------------------------------------------------------------
def config(**fields) -> pb.GenerateRequest:
    """A config for a small, quick render; ``fields`` are GenerateConfig fields."""
    small = pb.Resolution(size=pb.Size(width=128, height=128))
    message = pb.GenerateConfig(output=pb.OutputOptions(resolution=small))
    for key, value in fields.items():
        if key == "output":
            message.output.CopyFrom(value)
            if not value.HasField("resolution"):
                message.output.resolution.CopyFrom(small)
        elif isinstance(value, (pb.AudioTrim, pb.AnimationOptions, pb.FaceSelector)):
            getattr(message, key).CopyFrom(value)
        else:
            setattr(message, key, value)
    return pb.GenerateRequest(config=message)


def output(**fields) -> pb.GenerateRequest:
    return config(output=pb.OutputOptions(**fields))


def image(data: bytes) -> pb.GenerateRequest:
    return pb.GenerateRequest(image=pb.ImageInput(data=data))


def video(data: bytes) -> pb.GenerateRequest:
    return pb.GenerateRequest(video=pb.VideoInput(data=data))


def encoded(data: bytes) -> list[pb.GenerateRequest]:
    pieces = [data[i : i + _PIECE] for i in range(0, len(data), _PIECE)] or [b""]
    return [pb.GenerateRequest(audio=pb.AudioChunk(encoded=p)) for p in pieces]


def pcm(data: bytes, rate: int = 0, channels: int = 0) -> pb.GenerateRequest:
    chunk = pb.PcmChunk(data=data, sample_rate=rate, channels=channels)
    return pb.GenerateRequest(audio=pb.AudioChunk(pcm=chunk))


def portrait(m: Media) -> pb.GenerateRequest:
    return image(m.image["jpg"])


def with_audio(data: bytes, head: pb.GenerateRequest | None = None) -> Build:
    """config, a good portrait, ``data`` as the audio file, end."""
    return lambda m: [head or config(), portrait(m), *encoded(data), END]


def with_portrait(data: Callable[[Media], bytes]) -> Build:
    """config, ``data`` as the portrait, good audio, end."""
    return lambda m: [config(), image(data(m)), *encoded(m.audio["wav"]), END]


def with_config(request: pb.GenerateRequest) -> Build:
    """``request`` as the config, then a good portrait and audio."""
    return lambda m: [request, portrait(m), *encoded(m.audio["wav"]), END]


def lipsync(data: Callable[[Media], bytes], **fields) -> Build:
    return lambda m: [
        config(model="lipsync", **fields),
        video(data(m)),
        *encoded(m.audio["wav"]),
        END,
    ]


def seed(fmt: str, change: Callable[[bytes], bytes]) -> Callable[[Media], bytes]:
    return lambda m: change(m.audio[fmt] if fmt in m.audio else m.image[fmt])


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def raw_config(extra: bytes) -> bytes:
    """A serialised config request with raw ``extra`` field bytes appended (last one wins)."""
    body = config().config.SerializeToString() + extra
    return b"\x0a" + _varint(len(body)) + body


def raw_string_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


# --- audio files: truncated, corrupt, empty, for every accepted format ---------------------------
# Cut in the header or before the first complete frame: refused. Cut after some frames: the
# audio that arrived renders (a client that sends `end` says that is all the audio there is).
_AUDIO_EXPECT = {
    #          cut4     cut16    cut50%   cut-7    flip0    flip20   flip50%  junk
    "wav": ("I", "I", "OK", "OK", "I", "I", "OK", "I"),
    "mp3": ("I", "I", "OK", "OK", "I", "OK", "OK", "I"),
    "m4a": ("I", "I", "I", "OK", "I", "OK", "OK", "I"),
    "opus": ("I", "I", "I", "OK", "I", "I", "OK", "I"),
    "vorbis": ("I", "I", "I", "OK", "I", "I", "OK", "I"),
    "flac": ("I", "I", "OK", "OK", "I", "I", "OK", "I"),
    "webm": ("I", "I", "OK", "OK", "I", "I", "OK", "I"),
}
_AUDIO_CHANGES: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("cut4", lambda d: cut(d, 4)),
    ("cut16", lambda d: cut(d, 16)),
    ("cut50%", lambda d: cut(d, 0.5)),
    ("cut-7", lambda d: d[:-7]),
    ("flip0", lambda d: flip(d, 0)),
    ("flip20", lambda d: flip(d, 20)),
    ("flip50%", lambda d: flip(d, 0.5)),
    ("junk", lambda d: d[:64] + np.random.default_rng(7).bytes(6000)),
]
for _fmt in AUDIO_FORMATS:
    add(f"audio/{_fmt}/empty", INVALID, "audio is empty", lambda m: with_audio(b"")(m))
    for (_what, _change), _expect in zip(_AUDIO_CHANGES, _AUDIO_EXPECT[_fmt], strict=True):
        add(
            f"audio/{_fmt}/{_what}",
            INVALID if _expect == "I" else "OK",
            "could not decode the audio" if _expect == "I" else "",
            lambda m, f=_fmt, c=_change: with_audio(c(m.audio[f]))(m),
        )

# Found by this corpus: PyAV raised UnicodeDecodeError on a non-UTF-8 tag (here the MP4 brand),
# and ValueError when the sample rate changed mid-stream; both ended as INTERNAL.
add("audio/m4a-non-utf8-brand", "OK", "", lambda m: with_audio(flip(m.audio["m4a"], 8))(m))
add("audio/mp3-rate-changes-midway", "OK", "", lambda m: with_audio(m.audio["mp3"] + m.mp3_44k)(m))
add("audio/random-bytes", INVALID, "unrecognised format", lambda m: with_audio(os.urandom(5000))(m))
add("audio/text", INVALID, "unrecognised format", with_audio(b"hello, this is not audio\n" * 50))
add("audio/wav-rate-0", INVALID, "could not decode the audio", with_audio(wav_header(0, 1)))
add("audio/wav-rate-7", INVALID, "sample rate 7 Hz", with_audio(wav_header(7, 1)))
add("audio/wav-rate-1", INVALID, "sample rate 1 Hz", with_audio(wav_header(1, 1)))
add("audio/wav-rate-10M", INVALID, "sample rate", with_audio(wav_header(10**7, 1, samples=200_000)))
add("audio/wav-10-ms", INVALID, "too short", with_audio(wav_header(16000, 1, samples=160)))
add("audio/wav-channels-64", INVALID, "mono or stereo", with_audio(wav_header(16000, 64)))
add("audio/wav-channels-0", INVALID, "could not decode the audio", with_audio(wav_header(16000, 0)))
add("audio/wav-channels-9", INVALID, "mono or stereo", with_audio(wav_header(16000, 9)))
add(
    "audio/wav-bits-0",
    INVALID,
    "could not decode the audio",
    with_audio(wav_header(16000, 1, bits=0)),
)
add("audio/id3-header-only", INVALID, "could not decode", with_audio(b"ID3\x04\0\0\0\0\0\0"))
add(
    "audio/adts-sync-then-noise",
    INVALID,
    "no decodable audio",
    with_audio(b"\xff\xf1" + bytes(4000)),
)


# --- local files and protocols: never followed ---------------------------------------------------
# Each text names a real WAV on disk: were it read, the request would render (OK).
def _playlists(m: Media) -> dict[str, bytes]:
    path = str(m.speech)
    return {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{path}\n#EXT-X-ENDLIST\n".encode(),
        "hls-file-url": f"#EXTM3U\n#EXTINF:1.0,\nfile://{path}\n#EXT-X-ENDLIST\n".encode(),
        "concat": f"ffconcat version 1.0\nfile '{path}'\n".encode(),
        "file-url": f"file:{path}".encode(),
        "subfile": f"subfile,,start,0,end,0,,:{path}".encode(),
        "sdp": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=audio 5004 RTP/AVP 0\n",
    }


for _kind in ("hls", "hls-file-url", "concat", "file-url", "subfile", "sdp"):
    add(
        f"local-file/audio-{_kind}",
        INVALID,
        "unrecognised format",
        lambda m, k=_kind: with_audio(_playlists(m)[k])(m),
    )
add(
    "local-file/video-hls",
    INVALID,
    "not in a supported format",
    lipsync(lambda m: _playlists(m)["hls"]),
)
add(
    "local-file/video-concat",
    INVALID,
    "not in a supported format",
    lipsync(lambda m: _playlists(m)["concat"]),
)
add(
    "local-file/image-file-url",
    INVALID,
    "PNG, JPEG or WebP",
    with_portrait(lambda m: _playlists(m)["file-url"]),
)


# --- images --------------------------------------------------------------------------------------
_IMAGE_EXPECT = {  # cut8, cut30, cut50%, flip16, noise
    "png": (INVALID, INVALID, INVALID, EXHAUSTED, INVALID),
    "jpg": (INVALID, INVALID, "OK", INVALID, INVALID),
    "webp": (INVALID, INVALID, INVALID, INVALID, INVALID),
}
_IMAGE_CHANGES: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("cut8", lambda d: cut(d, 8)),
    ("cut30", lambda d: cut(d, 30)),
    ("cut50%", lambda d: cut(d, 0.5)),
    ("flip16", lambda d: flip(d, 16)),
    ("noise", lambda d: d[:40] + np.random.default_rng(5).bytes(len(d) - 40)),
]
_IMAGE_PHRASE = {INVALID: "image", EXHAUSTED: "pixels", "OK": ""}
for _fmt in IMAGE_FORMATS:
    for (_what, _change), _code in zip(_IMAGE_CHANGES, _IMAGE_EXPECT[_fmt], strict=True):
        add(
            f"image/{_fmt}/{_what}",
            _code,
            _IMAGE_PHRASE[_code],
            with_portrait(lambda m, f=_fmt, c=_change: c(m.image[f])),
        )
add(
    "image/png-bomb-100000x100000",
    EXHAUSTED,
    "100000x100000",
    with_portrait(lambda m: png(100000, 100000)),
)
add("image/png-2^31-wide", EXHAUSTED, "smaller image", with_portrait(lambda m: png(2**31, 1)))
add("image/png-0x0", INVALID, "empty size", with_portrait(lambda m: png(0, 0)))
add("image/png-1x1", INVALID, "too small", with_portrait(lambda m: png(1, 1, b"\0\0\0\0")))
add("image/png-header-only", INVALID, "corrupt PNG", with_portrait(lambda m: png(64, 64)[:33]))
add("image/empty", INVALID, "image is empty", with_portrait(lambda m: b""))
add("image/gif", INVALID, "PNG, JPEG or WebP", with_portrait(lambda m: m.gif))
add("image/bmp", INVALID, "PNG, JPEG or WebP", with_portrait(lambda m: m.bmp))
add(
    "image/svg",
    INVALID,
    "PNG, JPEG or WebP",
    with_portrait(lambda m: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
)
add(
    "image/heic-like",
    INVALID,
    "PNG, JPEG or WebP",
    with_portrait(lambda m: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(200)),
)
add("image/random-bytes", INVALID, "PNG, JPEG or WebP", with_portrait(lambda m: os.urandom(4000)))
add(
    "image/jpeg-soi-only",
    INVALID,
    "JPEG frame header",
    with_portrait(lambda m: b"\xff\xd8\xff\xd9"),
)
add("image/webp-riff-only", INVALID, "WebP", with_portrait(lambda m: b"RIFF\0\0\0\0WEBPVP8 "))
add("image/no-face", INVALID, "no face", with_portrait(lambda m: png(64, 64, bytes(64 * 193))))
add("image/split-into-97-pieces", "OK", "", lambda m: [
    config(),
    *[image(p.tobytes()) for p in np.array_split(np.frombuffer(m.image["png"], np.uint8), 97)],
    *encoded(m.audio["wav"]), END,
])  # fmt: skip
add(
    "image/over-image-byte-limit",
    EXHAUSTED,
    "larger than",
    lambda m: [config(), *[image(bytes(7 * 2**20))] * 3, *encoded(m.audio["wav"]), END],
)


# --- speaker videos (lipsync) --------------------------------------------------------------------
add("video/mp4-cut50%", INVALID, "could not read the video", lipsync(lambda m: cut(m.video, 0.5)))
add("video/mp4-cut100", INVALID, "could not read the video", lipsync(lambda m: cut(m.video, 100)))
add("video/random-bytes", INVALID, "not in a supported format", lipsync(lambda m: os.urandom(5000)))
add("video/mp4-no-video-stream", INVALID, "no video stream", lipsync(lambda m: m.audio_only_mp4))
add("video/webm-audio-only", INVALID, "no video stream", lipsync(lambda m: m.audio["webm"]))
add("video/empty", INVALID, "video is missing", lipsync(lambda m: b""))
add("video/8x8-pixels", INVALID, "too small", lipsync(lambda m: m.tiny_video))
add(
    "video/image-for-lipsync",
    INVALID,
    "takes a video",
    lambda m: [config(model="lipsync"), portrait(m), *encoded(m.audio["wav"]), END],
)
add(
    "video/video-for-avatar",
    INVALID,
    "still image",
    lambda m: [config(), video(m.video), *encoded(m.audio["wav"]), END],
)
add(
    "video/face-box-inverted",
    INVALID,
    "face box",
    lipsync(lambda m: m.video, face=pb.FaceSelector(box=pb.Box(x0=9, y0=9, x1=1, y1=1))),
)
add(
    "video/face-box-nan",
    INVALID,
    "face box",
    lipsync(lambda m: m.video, face=pb.FaceSelector(box=pb.Box(x0=math.nan, y0=0, x1=9, y1=9))),
)


# --- raw PCM -------------------------------------------------------------------------------------
def _pcm_stream(*chunks: pb.GenerateRequest) -> Build:
    return lambda m: [config(), portrait(m), *chunks, END]


_TONE = (np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes()
add("pcm/rate-0", INVALID, "sample rate", _pcm_stream(pcm(_TONE, 0, 1)))
add("pcm/rate-7", INVALID, "sample rate", _pcm_stream(pcm(_TONE, 7, 1)))
add("pcm/rate-10^7", INVALID, "sample rate", _pcm_stream(pcm(_TONE, 10**7, 1)))
add("pcm/channels-0", INVALID, "channel count", _pcm_stream(pcm(_TONE, 16000, 0)))
add("pcm/channels-9", INVALID, "channel count", _pcm_stream(pcm(_TONE, 16000, 9)))
add(
    "pcm/rate-changes",
    INVALID,
    "must not change",
    _pcm_stream(pcm(_TONE, 16000, 1), pcm(_TONE, 22050, 1)),
)
add("pcm/10-ms", INVALID, "too short", _pcm_stream(pcm(_TONE[:320], 16000, 1)))
add("pcm/empty", INVALID, "no samples", _pcm_stream(pcm(b"", 16000, 1)))
add("pcm/half-a-sample", INVALID, "no samples", _pcm_stream(pcm(b"\x01", 16000, 1)))
add(
    "pcm/full-scale-clipping",
    "OK",
    "",
    _pcm_stream(pcm(np.tile(np.array([32767, -32768], "<i2"), 8000).tobytes(), 16000, 1)),
)
add(  # float32 NaN/inf bit patterns read as s16: loud noise, nothing special
    "pcm/nan-inf-patterns",
    "OK",
    "",
    _pcm_stream(pcm(np.tile(np.array([np.nan, np.inf, -np.inf], "<f4"), 4000).tobytes(), 16000, 2)),
)
add(
    "pcm/odd-length-chunks",
    "OK",
    "",
    _pcm_stream(pcm(_TONE[:3], 16000, 2), *[pcm(_TONE[i : i + 777]) for i in range(3, 16000, 777)]),
)
add(
    "pcm/then-encoded",
    PRECONDITION,
    "do not mix",
    lambda m: [config(), portrait(m), pcm(_TONE, 16000, 1), *encoded(m.audio["wav"]), END],
)
add(
    "pcm/after-encoded",
    PRECONDITION,
    "do not mix",
    lambda m: [config(), portrait(m), *encoded(m.audio["wav"]), pcm(_TONE, 16000, 1), END],
)
add(
    "pcm/audio-chunk-without-payload",
    INVALID,
    "encoded bytes or pcm",
    _pcm_stream(pb.GenerateRequest(audio=pb.AudioChunk())),
)


# --- message order, duplicates, missing messages -------------------------------------------------
def _audio(m: Media) -> list[pb.GenerateRequest]:
    return encoded(m.audio["wav"])


add("order/empty-stream", INVALID, "stream was empty", lambda m: [])
add(
    "order/empty-request-first",
    INVALID,
    "first message must be a config",
    lambda m: [pb.GenerateRequest(), portrait(m), *_audio(m), END],
)
add(
    "order/empty-request-later",
    INVALID,
    "empty GenerateRequest",
    lambda m: [config(), portrait(m), pb.GenerateRequest(), *_audio(m), END],
)
add(
    "order/missing-config",
    INVALID,
    "first message must be a config",
    lambda m: [portrait(m), *_audio(m), END],
)
add(
    "order/audio-first",
    INVALID,
    "first message must be a config",
    lambda m: [*_audio(m), config(), portrait(m), END],
)
add(
    "order/audio-before-image",
    INVALID,
    "portrait is missing",
    lambda m: [config(), *_audio(m), portrait(m), END],
)
add(
    "order/image-after-audio",
    PRECONDITION,
    "in that order",
    lambda m: [config(), portrait(m), *_audio(m), portrait(m), END],
)
add(
    "order/config-twice",
    PRECONDITION,
    "second config",
    lambda m: [config(), config(), portrait(m), *_audio(m), END],
)
add(
    "order/config-after-audio",
    PRECONDITION,
    "second config",
    lambda m: [config(), portrait(m), *_audio(m), config(), END],
)
add(
    "order/end-twice",
    PRECONDITION,
    "after the end message",
    lambda m: [config(), portrait(m), *_audio(m), END, END],
)
add(
    "order/audio-after-end",
    PRECONDITION,
    "after the end message",
    lambda m: [config(), portrait(m), *_audio(m), END, *_audio(m)],
)
add("order/missing-end", INVALID, "end message", lambda m: [config(), portrait(m), *_audio(m)])
add("order/end-after-config", INVALID, "portrait is missing", lambda m: [config(), END])
add("order/end-after-image", INVALID, "audio is missing", lambda m: [config(), portrait(m), END])
add("order/config-only", INVALID, "ended before any audio", lambda m: [config(), portrait(m)])
add(
    "order/duplicated-image",
    "OK",
    "",
    lambda m: [config(), portrait(m), portrait(m), *_audio(m), END],
)
add(
    "order/duplicated-audio",
    "OK",
    "",
    lambda m: [config(), portrait(m), *_audio(m), *_audio(m), END],
)


def _silent_client(m: Media) -> Iterable[pb.GenerateRequest]:
    yield config()
    yield portrait(m)
    time.sleep(8)  # longer than the server's idle timeout (conftest.IDLE_TIMEOUT)


add("order/silent-client", "DEADLINE_EXCEEDED", "no message from the client", _silent_client)
add(
    "size/message-over-max-message-bytes",
    EXHAUSTED,
    "larger than max",
    lambda m: [config(), image(bytes(9 * 2**20)), END],
)

# --- enums: raw numbers outside the enum ---------------------------------------------------------
add("enum/container-7", INVALID, "CONTAINER_FMP4", with_config(output(container=7)))
add("enum/video-codec-9", INVALID, "H264", with_config(output(video_codec=9)))
add("enum/audio-codec-5", INVALID, "AAC", with_config(output(audio_codec=5)))
add("enum/aspect-99", INVALID, "aspect ratio", with_config(output(aspect_ratio=99)))
add("enum/fit-negative", INVALID, "fit", with_config(output(fit=-1)))
add(
    "enum/preset-42",
    INVALID,
    "resolution preset",
    with_config(output(resolution=pb.Resolution(preset=42))),
)
add("enum/sync-mode-77", INVALID, "sync mode", with_config(config(sync_mode=77)))

# --- numbers out of range ------------------------------------------------------------------------
for _fps in (0.5, 61, math.nan, math.inf, -math.inf, -5):
    add(f"number/fps-{_fps}", INVALID, "fps", with_config(output(fps=_fps)))
for _name, _trim, _phrase in [
    ("negative-start", pb.AudioTrim(start_seconds=-1), "trim start"),
    ("inverted", pb.AudioTrim(start_seconds=2, end_seconds=1), "trim end"),
    ("nan-start", pb.AudioTrim(start_seconds=math.nan), "trim start"),
    ("inf-end", pb.AudioTrim(end_seconds=math.inf), "trim end"),
    ("huge-start", pb.AudioTrim(start_seconds=1e308), "trim"),
    ("huge-end", pb.AudioTrim(end_seconds=1e308), "trim"),
]:
    add(f"number/trim-{_name}", INVALID, _phrase, with_config(config(trim=_trim)))
add(
    "number/trim-past-the-end",
    INVALID,
    "no samples",
    with_config(config(trim=pb.AudioTrim(start_seconds=100))),
)
for _w, _h, _phrase in [
    (129, 128, "even"),
    (0, 0, "even"),
    (100000, 100000, "64..3840"),
    (2, 2, "64..3840"),
]:
    _res = pb.Resolution(size=pb.Size(width=_w, height=_h))
    add(f"number/size-{_w}x{_h}", INVALID, _phrase, with_config(output(resolution=_res)))
add(
    "number/size-aspect-mismatch",
    INVALID,
    "aspect ratio",
    with_config(output(aspect_ratio=pb.ASPECT_RATIO_16_9)),
)
for _field, _value in [
    ("expression_scale", -1.0),
    ("expression_scale", math.nan),
    ("head_motion_scale", 3.0),
    ("head_motion_scale", -math.inf),
    ("blink_rate", 61.0),
    ("blink_rate", -0.5),
]:
    add(
        f"number/{_field}-{_value}",
        INVALID,
        _field,
        with_config(config(animation=pb.AnimationOptions(**{_field: _value}))),
    )

# --- text: odd Unicode, lengths, control characters ----------------------------------------------
_ODD = (  # RTL override and mark, zero-width joiners (a family emoji), a combining accent
    "\u202eRTL\u200f mark, zero\u200dwidth joiner "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 e\u0301"
)
add("text/prompt-odd-unicode", "OK", "", with_config(config(prompt=_ODD)))
add("text/transcript-odd-unicode", "OK", "", with_config(config(transcript=_ODD + " hello")))
add("text/prompt-2001-chars", INVALID, "prompt", with_config(config(prompt="a" * 2001)))
add(
    "text/prompt-2001-emoji",
    INVALID,
    "limit is 2000",
    with_config(config(prompt="\U0001f600" * 2001)),
)
add("text/transcript-5001-chars", INVALID, "transcript", with_config(config(transcript="b" * 5001)))
add(
    "text/request-id-control-char",
    INVALID,
    "request_id",
    with_config(config(request_id="abc\x07\n")),
)
add("text/request-id-rtl-mark", INVALID, "request_id", with_config(config(request_id="id\u200f")))
add("text/request-id-129-chars", INVALID, "request_id", with_config(config(request_id="r" * 129)))
add("text/request-id-emoji", "OK", "", with_config(config(request_id="\U0001f3ac-take-1")))
add(
    "text/model-odd-unicode",
    "NOT_FOUND",
    "unknown model",
    with_config(config(model="talking\u200d_avatar")),
)
add("model/unknown", "NOT_FOUND", "ListModels", with_config(config(model="nope")))
for _field, _number in (("prompt", 3), ("request_id", 6), ("model", 1)):
    add(
        f"text/{_field}-lone-surrogate-bytes",
        INVALID,
        "UTF-8",
        lambda m, n=_number: [
            raw_config(raw_string_field(n, b"a\xed\xa0\x80b")),
            portrait(m),
            *_audio(m),
            END,
        ],
    )
add(
    "text/prompt-overlong-utf8-bytes",
    INVALID,
    "UTF-8",
    lambda m: [raw_config(raw_string_field(3, b"\xc0\xaf\xff")), portrait(m), *_audio(m), END],
)

# --- round two (issue 9): one module per area, each registers its cases with case() / add() ----
import cases_media  # noqa: E402, F401
import cases_pipeline  # noqa: E402, F401
