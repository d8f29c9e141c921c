"""Benchmark inputs made on the spot (espeak-ng speech, sox) and a description of the machine."""

from __future__ import annotations

import os
import platform
import struct
import subprocess
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "samples" / "portrait.jpg"
SPEECH = ROOT / "samples" / "speech.ogg"

_TEXT = (
    "Good evening. Here is the news at a glance. The weather stays mild through the weekend, "
    "with light rain in the north on Sunday. Markets closed slightly higher after a quiet day, "
    "and the city council approved the new bus lanes on the river road."
)


def _run(*cmd: str) -> None:
    # sox dithers (and draws white noise) from a random seed of its own unless told -R: the
    # same input then came out a little different in every run, and so did the figures
    # measured on it (bench-quality's fold counts on one clip: 2 to 7 between runs)
    if cmd[0] == "sox":
        cmd = ("sox", "-R", *cmd[1:])
    subprocess.run(cmd, check=True, capture_output=True)


def speech(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Mono speech of exactly ``seconds`` (espeak-ng, repeated with sox, then cut)."""
    raw = path.with_suffix(".raw.wav")
    _run("espeak-ng", "-v", "en-us", "-w", str(raw), _TEXT)
    once = audio_seconds(raw)
    repeats = max(0, int(seconds / once))  # sox "repeat N" plays N+1 times
    _run(
        "sox",
        str(raw),
        "-r",
        str(rate),
        "-c",
        "1",
        str(path),
        "repeat",
        str(repeats),
        "trim",
        "0",
        f"{seconds:.3f}",
    )
    raw.unlink()
    return path


def drum_loop(
    path: Path, seconds: float = 16.0, bpm: float = 126.0, first: float = 0.5, rate: int = 22050
) -> np.ndarray:
    """A drum loop at ``bpm`` written to ``path`` (WAV): a kick on every beat (accented on each
    bar's first), a hi-hat on the off-beats, a bass note per bar. Returns the beat times."""
    n = int(seconds * rate)
    x = np.zeros(n)
    period = 60.0 / bpm
    beats = np.arange(first, seconds - 0.5, period)
    t = np.arange(int(0.25 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 * t + 60 * 0.02 * (1 - np.exp(-t / 0.02)))) * np.exp(-t / 0.09)
    m = int(0.03 * rate)
    hat = np.diff(np.random.default_rng(3).standard_normal(m), prepend=0)
    hat *= np.exp(-np.arange(m) / 150)
    for i, b in enumerate(beats):
        k = int(b * rate)
        x[k : k + len(kick)] += (0.9 if i % 4 == 0 else 0.55) * kick[: n - k]
        h = int((b + period / 2) * rate)
        if h < n:
            x[h : h + len(hat)] += 0.15 * hat[: n - h]
        if i % 4 == 0:
            m = min(int(4 * period * rate), n - k)
            tb = np.arange(m) / rate
            env = np.minimum(1, tb / 0.01) * np.minimum(1, (m / rate - tb) / 0.05)
            x[k : k + m] += 0.2 * np.sin(2 * np.pi * 55 * tb) * env
    pcm = (np.clip(x / np.abs(x).max() * 0.8, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return beats


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6


def machine() -> str:
    """CPU model, core count, memory and OS, for the table's caption."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = "no GPU" if not Path("/dev/nvidia0").exists() else "GPU present (model runs on CPU)"
    return (
        f"{model}, {os.cpu_count()} cores{mem}, {gpu}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def speaker_video(
    path: Path, width: int, height: int, seconds: float = 10.0, fps: int = 25
) -> Path:
    """A speaker video for lipsync: the sample portrait, filling the frame's height, panning and
    zooming slowly (a head that moves), H.264 in a faststart MP4 at ``fps``."""
    import cv2

    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    base = min(width, height) / max(portrait.shape[:2])

    def frame(k: int) -> np.ndarray:
        zoom = base * (1 + 0.05 * np.sin(k / 25))
        dx = width / 2 - zoom * portrait.shape[1] / 2 + 0.03 * width * np.sin(k / 20)
        dy = height / 2 - zoom * portrait.shape[0] / 2
        move = np.float32([[zoom, 0, dx], [0, zoom, dy]])
        return cv2.warpAffine(portrait, move, (width, height), borderMode=cv2.BORDER_REFLECT)

    return _faststart_mp4(path, width, height, fps, map(frame, range(round(seconds * fps))))


def cutaway_video(speaker: Path, path: Path) -> Path:
    """``speaker`` (a ``speaker_video``) with a cutaway: from 3.5 to 6.5 s a shot without a face
    (skimage's coffee cup, public domain, filling the frame and drifting slowly, as B-roll
    does), then back to the speaker with a cut."""
    import cv2
    from skimage import data

    cup = np.ascontiguousarray(data.coffee())
    with av.open(str(speaker)) as source:
        stream = source.streams.video[0]
        width, height, fps = stream.width, stream.height, int(stream.average_rate)
        scale = 1.1 * max(width / cup.shape[1], height / cup.shape[0])

        def frame(k: int, picture: np.ndarray) -> np.ndarray:
            if not 3.5 <= k / fps < 6.5:
                return picture
            dx = (width - scale * cup.shape[1]) / 2 + 0.02 * width * np.sin(k / 30)
            dy = (height - scale * cup.shape[0]) / 2
            move = np.float32([[scale, 0, dx], [0, scale, dy]])
            return cv2.warpAffine(cup, move, (width, height), borderMode=cv2.BORDER_REFLECT)

        pictures = (p.to_ndarray(format="rgb24") for p in source.decode(stream))
        cut = (frame(k, picture) for k, picture in enumerate(pictures))
        return _faststart_mp4(path, width, height, fps, cut)


def phone_video(
    path: Path, width: int = 3840, height: int = 2160, seconds: float = 3.0, fps: int = 25
) -> Path:
    """A speaker video as a phone films it: the panning, zooming portrait of ``speaker_video``
    at 4K with sensor grain (a new pattern every frame), H.264 at a phone's bit rate (the
    same CRF 18 on the grain: ~50 Mbit/s, I-frames of ~750 KB), faststart MP4."""
    import cv2

    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    base = min(width, height) / max(portrait.shape[:2])
    rng = np.random.default_rng(7)
    # a few grain fields, shifted each frame: new grain everywhere, made in a few seconds
    grains = [rng.normal(0, 4, (height + 64, width + 64, 3)).astype(np.int16) for _ in range(3)]

    def frame(k: int) -> np.ndarray:
        zoom = base * (1 + 0.05 * np.sin(k / 25))
        dx = width / 2 - zoom * portrait.shape[1] / 2 + 0.03 * width * np.sin(k / 20)
        dy = height / 2 - zoom * portrait.shape[0] / 2
        move = np.float32([[zoom, 0, dx], [0, zoom, dy]])
        picture = cv2.warpAffine(portrait, move, (width, height), borderMode=cv2.BORDER_REFLECT)
        ox, oy = (k * 37) % 64, (k * 23) % 64
        grain = grains[k % len(grains)][oy : oy + height, ox : ox + width]
        return np.clip(picture + grain, 0, 255).astype(np.uint8)

    return _faststart_mp4(path, width, height, fps, map(frame, range(round(seconds * fps))))


def prores_video(source: Path, path: Path) -> Path:
    """``source`` as a camera's or an editor's intermediate: ProRes 422 HQ, 10-bit 4:2:2, in
    a MOV whose index comes after the media (the ffmpeg command line's default, as cameras
    write it)."""
    _run("ffmpeg", "-v", "error", "-y", "-i", str(source), "-c:v", "prores_ks", "-profile:v",
         "3", "-pix_fmt", "yuv422p10le", "-an", str(path))  # fmt: skip
    return path


def index_at_end(path: Path) -> bool:
    """Whether an MP4/MOV keeps its index (``moov``) after the media (``mdat``), as the
    server's Spool.moov_at_end reads it: its top-level boxes, in order."""
    with open(path, "rb") as f:
        while len(header := f.read(16)) >= 8:
            size, kind = struct.unpack(">I4s", header[:8])
            if kind in (b"moov", b"mdat"):
                return kind == b"mdat"
            if size == 1 and len(header) == 16:
                size = struct.unpack(">Q", header[8:])[0]
            if size < 8:
                return False
            f.seek(f.tell() - len(header) + size)
    return False


#: AVColorTransferCharacteristic numbers of the HDR transfers, by FFmpeg's names
HDR_TRANSFERS = {"arib-std-b67": 18, "smpte2084": 16}


def hdr_frames(frames: Iterable[av.VideoFrame], transfer: str) -> Iterator[av.VideoFrame]:
    """SDR BT.709 ``frames`` made into real HDR by FFmpeg's own colour management (HLG
    "arib-std-b67" or PQ "smpte2084", BT.2020, limited range, 10-bit 4:2:0), tagged as a phone
    tags them: what an SDR screen shows of them is ``frames`` again."""
    from a2v_server.media.filters import filter_chain

    graph = None
    for frame in frames:
        frame.color_primaries, frame.color_trc = 1, 1
        if graph is None:
            graph = filter_chain(
                frame,
                (
                    "scale",
                    "in_primaries=bt709:in_transfer=bt709:out_color_matrix=bt2020:"
                    f"out_primaries=bt2020:out_transfer={transfer}:out_range=tv",
                ),
                ("format", "yuv420p10le"),
            )
        graph.push(frame)
        hdr = graph.pull()
        hdr.colorspace, hdr.color_primaries, hdr.color_range = 9, 9, 1
        hdr.color_trc = HDR_TRANSFERS[transfer]
        yield hdr


def hlg_video(source: Path, path: Path) -> Path:
    """``source`` (SDR BT.709) as a phone's HDR video (``hdr_frames``, HLG): 10-bit HEVC at
    12 Mbit/s, index first."""
    from fractions import Fraction

    with (
        av.open(str(source)) as container,
        av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        decoded = container.streams.video[0]
        rate = decoded.average_rate or Fraction(25)
        stream = out.add_stream(
            "libx265",
            rate=rate,
            options={"preset": "ultrafast", "x265-params": "log-level=error"},
        )
        stream.bit_rate = 12_000_000  # a phone's 1080p HEVC
        stream.width, stream.height, stream.pix_fmt = decoded.width, decoded.height, "yuv420p10le"
        stream.codec_tag = "hvc1"
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 9, 9, 18
        context.color_range = 1
        for k, hdr in enumerate(hdr_frames(container.decode(decoded), "arib-std-b67")):
            hdr.pts, hdr.time_base = k, 1 / rate
            out.mux(stream.encode(hdr))
        out.mux(stream.encode(None))
    return path


def video_bitrate(path: Path) -> float:
    """The video stream's bits per second."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base)
        return sum(p.size for p in container.demux(stream)) * 8 / seconds


def _faststart_mp4(path: Path, width: int, height: int, fps: int, frames) -> Path:
    """RGB ``frames`` as H.264 in an MP4 with its index first (faststart), as files made for
    the web are: decodable while they arrive."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def group_picture() -> np.ndarray:
    """Two people side by side (RGB, 960x512): the sample portrait, and skimage's astronaut
    (public domain) smaller on the right. Face 0 is the portrait (the larger), face 1 the
    astronaut."""
    import cv2
    from skimage import data

    left = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    right = cv2.resize(data.astronaut()[:400, 50:450], (380, 380))
    canvas = np.full((512, 960, 3), 90, np.uint8)
    canvas[:, :512] = cv2.resize(left, (512, 512))
    canvas[70:450, 560:940] = right
    return canvas


def group_video(path: Path, width: int, height: int, seconds: float = 10.0, fps: int = 25) -> Path:
    """The group picture filling a ``width`` x ``height`` frame, drifting sideways a little as a
    hand-held camera would, H.264 in a faststart MP4 (a lipsync source with two faces)."""
    import cv2

    picture = group_picture()
    scale = max(width / picture.shape[1], height / picture.shape[0])

    def frame(k: int) -> np.ndarray:
        dx = (width - scale * picture.shape[1]) / 2 + 0.005 * width * np.sin(k / 10)
        dy = (height - scale * picture.shape[0]) / 2
        move = np.float32([[scale, 0, dx], [0, scale, dy]])
        return cv2.warpAffine(picture, move, (width, height), borderMode=cv2.BORDER_REFLECT)

    return _faststart_mp4(path, width, height, fps, map(frame, range(round(seconds * fps))))


def repeated(video: Path, path: Path, times: int) -> Path:
    """``video`` played ``times`` times over, by stream copy (a long source made in seconds),
    with its index first (faststart)."""
    listing = path.with_suffix(".txt")
    listing.write_text(f"file '{video.resolve()}'\n" * times)
    _run(
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(path),
    )
    return path
