"""Test media made on the fly (espeak-ng speech, sox tones and silence, ffmpeg encodes,
synthetic pictures and tones) and helpers that read what the service produced."""

from __future__ import annotations

import io
import json
import subprocess
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bench import inputs as bench_inputs

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "samples" / "portrait.jpg"
SPEECH = ROOT / "samples" / "speech.ogg"


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def speech_wav(
    path: Path,
    text: str,
    *,
    voice: str = "en-us",
    lead: float = 0.0,
    tail: float = 0.0,
    rate: int = 16000,
) -> Path:
    """espeak-ng speech with `lead`/`tail` seconds of silence around it."""
    raw = path.with_suffix(".raw.wav")
    run("espeak-ng", "-v", voice, "-w", str(raw), text)
    run("sox", str(raw), "-r", str(rate), "-c", "1", str(path), "pad", str(lead), str(tail))
    raw.unlink()
    return path


def encode(src: Path, dst: Path, *args: str) -> Path:
    run("ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst))
    return dst


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def duration(path: Path) -> float:
    return float(probe(path)["format"]["duration"])


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def no_face_png(path: Path) -> Path:
    """A textured landscape-like picture with no face in it."""
    import cv2

    h, w = 360, 480
    y = np.linspace(0, 1, h)[:, None, None]
    img = (
        np.concatenate([80 + 120 * y, 140 + 60 * y, 230 - 80 * y], axis=2) * np.ones((1, w, 1))
    ).astype(np.uint8)
    rng = np.random.default_rng(3)
    img[200:] = np.clip(img[200:] + rng.integers(-30, 30, img[200:].shape), 0, 255)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def portrait_png(width: int = 320, height: int = 240, rgb=(40, 120, 200)) -> bytes:
    """A flat-coloured PNG: enough for the service tier, where the fake backend finds a face in
    any picture."""
    import cv2

    img = np.zeros((height, width, 3), np.uint8)
    img[:] = rgb
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def tone_wav(seconds: float, rate: int = 22050, hz: float = 220.0) -> bytes:
    """A mono 16-bit WAV of a sine tone at 0.3 of full scale."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def i420_of(rgb: np.ndarray, matrix: int = 1) -> np.ndarray:
    """``rgb`` as packed I420 (PyAV's yuv420p ndarray, limited range) through swscale, as a
    decoder gives it; ``matrix`` an AVCOL_SPC number (1 BT.709, 6 BT.601)."""
    from av.video.reformatter import ColorRange, Colorspace

    space = Colorspace.ITU709 if matrix == 1 else Colorspace.ITU601
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(
        format="yuv420p",
        src_colorspace=space,
        dst_colorspace=space,
        dst_color_range=ColorRange.MPEG,
    ).to_ndarray()


def rgb_of(packed: np.ndarray, matrix: int = 1) -> np.ndarray:
    """The RGB of packed I420 through swscale (the inverse of ``i420_of``)."""
    from av.video.reformatter import ColorRange, Colorspace

    space = Colorspace.ITU709 if matrix == 1 else Colorspace.ITU601
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(packed), format="yuv420p")
    return frame.reformat(
        format="rgb24", src_colorspace=space, src_color_range=ColorRange.MPEG, dst_colorspace=space
    ).to_ndarray()


def hdr_frames(frames, transfer: str) -> Iterator[av.VideoFrame]:
    """RGB ``frames`` (SDR BT.709) as real HDR frames (bench.inputs.hdr_frames: HLG
    "arib-std-b67" or PQ "smpte2084", 10-bit 4:2:0, tagged as a phone tags them)."""
    return bench_inputs.hdr_frames(
        (av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24") for rgb in frames),
        transfer,
    )


def hdr_mp4(frames, transfer: str, fps: int = 25) -> bytes:
    """``hdr_frames`` of RGB ``frames`` as 10-bit H.264 in an MP4 tagged as a phone tags it."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"qp": "4"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p10le"
        context = stream.codec_context
        context.colorspace, context.color_primaries = 9, 9
        context.color_trc, context.color_range = bench_inputs.HDR_TRANSFERS[transfer], 1
        for k, hdr in enumerate(hdr_frames(frames, transfer)):
            hdr.pts, hdr.time_base = k, Fraction(1, fps)
            container.mux(stream.encode(hdr))
        container.mux(stream.encode(None))
    return out.getvalue()


def interlaced_mp4(fields: np.ndarray, path: Path) -> Path:
    """RGB ``fields`` (n, height, width, 3; n even) of a 50 fields-a-second scene woven in
    pairs into an interlaced 25 fps H.264 MP4 (top field first, coded as interlaced, as a
    broadcast or HDV camera writes it), by the ffmpeg command line."""
    height, width = fields.shape[1:3]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{width}x{height}", "-r", "50", "-i", "-",
         "-vf", "tinterlace=mode=interleave_top,setfield=tff", "-c:v", "libx264", "-crf", "12",
         "-flags", "+ilme+ildct", "-x264opts", "tff=1", "-pix_fmt", "yuv420p", str(path)],
        input=np.ascontiguousarray(fields).tobytes(), check=True, capture_output=True,
    )  # fmt: skip
    return path


def bwdif_frames(path: Path, pix_fmt: str = "rgb24") -> np.ndarray:
    """A video's pictures deinterlaced by the ffmpeg command line's bwdif (a frame per frame):
    what a player shows of an interlaced video; (n, height, width[, 3])."""
    (stream,) = [s for s in probe(path)["streams"] if s["codec_type"] == "video"]
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", "bwdif=mode=send_frame",
         "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    shape = (stream["height"], stream["width"]) + ((3,) if pix_fmt == "rgb24" else ())
    return np.frombuffer(out, np.uint8).reshape(-1, *shape)
