"""Inputs of the quality benchmark, made on the spot: espeak-ng speech in several voices and
languages with pauses and silence, a sox beat track, portraits, still and speaker videos."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from ..inputs import PORTRAIT

#: speech rate of every input (the service resamples anyway)
RATE = 16000
#: seconds of silence before the first sentence, between the sentences, after the last
LEAD, PAUSE, TAIL = 0.8, 0.9, 1.0
#: the beat track's tempo
BPM = 120.0


@dataclass(frozen=True)
class Voice:
    label: str  # for the table
    voice: str  # espeak-ng voice (+variant)
    sentences: tuple[str, str]


VOICES = (
    Voice(
        "en-us (male)",
        "en-us",
        (
            "Good evening, here is the news at a glance.",
            "Markets closed slightly higher after a quiet day on the river road.",
        ),
    ),
    Voice(
        "en-gb (female variant f3)",
        "en-gb+f3",
        (
            "Shall we walk down to the harbour before lunch?",
            "The boats come back with the morning catch at about half past ten.",
        ),
    ),
    Voice(
        "de (German)",
        "de",
        (
            "Guten Abend, hier sind die Nachrichten des Tages.",
            "Morgen bleibt es mild, mit etwas Regen im Norden des Landes.",
        ),
    ),
    Voice(
        "fr (French, variant m3)",
        "fr-fr+m3",
        (
            "Bonsoir, voici les nouvelles de la journée.",
            "Demain il fera doux, avec un peu de pluie sur la côte ouest.",
        ),
    ),
    Voice(
        "es (Spanish, female variant f2)",
        "es+f2",
        (
            "Buenas tardes, estas son las noticias del día.",
            "Mañana hará buen tiempo, con algo de lluvia en el norte del país.",
        ),
    ),
)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def speech(path: Path, voice: Voice) -> Path:
    """Silence, sentence one, a pause, sentence two, silence: mono 16 kHz WAV."""
    parts = []
    for i, text in enumerate(voice.sentences):
        raw = path.with_suffix(f".{i}.raw.wav")
        _run("espeak-ng", "-v", voice.voice, "-s", "150", "-w", str(raw), text)
        part = path.with_suffix(f".{i}.wav")
        # espeak-ng pads its output with a little silence; pad to the pause/lead/tail lengths
        pad = (LEAD, PAUSE / 2) if i == 0 else (PAUSE / 2, TAIL)
        _run("sox", str(raw), "-r", str(RATE), "-c", "1", str(part), "pad", *map(str, pad))
        raw.unlink()
        parts.append(part)
    _run("sox", *map(str, parts), str(path))
    for part in parts:
        part.unlink()
    return path


def silence(path: Path, seconds: float) -> Path:
    _run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds))
    return path


def beat_track(path: Path, seconds: float = 8.0, bpm: float = BPM) -> Path:
    """A kick on every beat (sine sweep 150 -> 40 Hz, 120 ms), a click on the off-beats and a
    soft triangle-wave melody, one note per beat; no voice. 44.1 kHz mono WAV."""
    beat = 60.0 / bpm
    beats = round(seconds / beat)
    tmp = path.parent
    kick = tmp / "kick.wav"
    _run(
        "sox", "-n", "-r", "44100", "-c", "1", str(kick), "synth", "0.12", "sine", "150-40",
        "fade", "q", "0.002", "0.12", "0.1", "pad", "0", f"{beat - 0.12:.4f}",
    )  # fmt: skip
    click = tmp / "click.wav"
    _run(
        "sox", "-n", "-r", "44100", "-c", "1", str(click), "synth", "0.02", "whitenoise",
        "highpass", "3000", "vol", "0.3", "fade", "q", "0.001", "0.02", "0.015",
        "pad", f"{beat / 2:.4f}", f"{beat / 2 - 0.02:.4f}",
    )  # fmt: skip
    notes = [262, 330, 392, 523, 392, 330, 294, 349]  # C E G C' G E D F
    melody_parts = []
    for i in range(beats):
        note = tmp / f"note{i}.wav"
        _run(
            "sox", "-n", "-r", "44100", "-c", "1", str(note), "synth", f"{beat:.4f}",
            "triangle", str(notes[i % len(notes)]), "vol", "0.25", "fade", "q", "0.01",
            f"{beat:.4f}", "0.05",
        )  # fmt: skip
        melody_parts.append(note)
    melody = tmp / "melody.wav"
    _run("sox", *map(str, melody_parts), str(melody))
    drums = tmp / "drums.wav"
    _run("sox", "-m", str(kick), str(click), str(drums), "repeat", str(beats - 1))
    _run("sox", "-m", str(drums), str(melody), str(path), "trim", "0", f"{beats * beat:.3f}")
    for p in (kick, click, melody, drums, *melody_parts):
        p.unlink()
    return path


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return data.tobytes()


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


#: the speaker video's own speech (the lipsync inputs are the VOICES, never this one)
SPEAKER = Voice(
    "en-us (variant m7)",
    "en-us+m7",
    (
        "Thank you all for coming tonight, it is a real pleasure to see so many of you here.",
        "Before we start, let me say a few words about the plans for the new library building.",
    ),
)
#: a face from scikit-image's Labeled Faces in the Wild subset (25x25 px, grey): another person
LFW_INDEX = 15


def lfw_face(size: int = 512, face: int = 300) -> np.ndarray:
    """LFW face LFW_INDEX upscaled to ``face`` px in the middle of a ``size`` square, the rest
    filled by reflecting it: a low-detail photo of someone other than samples/portrait.jpg."""
    from skimage import data

    faces = np.load(Path(data.__file__).parent / "lfw_subset.npy")
    grey = (faces[LFW_INDEX] * 255).astype(np.uint8)
    big = cv2.resize(grey, (face, face), interpolation=cv2.INTER_CUBIC)
    pad = (size - face) // 2
    big = cv2.copyMakeBorder(
        big, pad, size - face - pad, pad, size - face - pad, cv2.BORDER_REFLECT
    )
    return cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)


def portraits() -> dict[str, bytes]:
    """samples/portrait.jpg; a mirrored, rescaled (0.8x, on a 640x480 canvas), grayscale copy
    of it; and a face of another person from scikit-image's LFW subset (upscaled 12x)."""
    base = load_rgb(PORTRAIT)
    gray = cv2.cvtColor(cv2.cvtColor(base[:, ::-1], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    small = cv2.resize(gray, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 96, np.uint8)
    y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 3
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return {
        "portrait.jpg": PORTRAIT.read_bytes(),
        "portrait.jpg mirrored, grey, 0.8x on 640x480": _jpeg(canvas),
        f"LFW face #{LFW_INDEX} (25 px, 12x upscaled)": _jpeg(lfw_face()),
    }


def still_video(image: np.ndarray, seconds: float, fps: int = 25, size: int = 512) -> bytes:
    """A perfectly still picture as an H.264 MP4 (CRF 16): the same frame ``seconds * fps``
    times."""
    frame = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "16"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(round(seconds * fps)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
