"""Inputs of the quality benchmark, made on the spot: espeak-ng speech in several voices and
languages with pauses and silence, a sox beat track, portraits, still and speaker videos."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from ..inputs import PORTRAIT, _run

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


# --- harder inputs: other faces, teeth, tilt, small and large faces, a moving speaker ----------
def _face_box(rgb: np.ndarray) -> tuple[float, float, float, float]:
    """The measuring model's (dlib's) box of the largest face: where to crop, scale, turn."""
    from .metrics import analyzer

    faces = analyzer().analyze(rgb)
    if not faces:
        raise RuntimeError("no face found in a benchmark input picture")
    return faces[0].box


def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, 512x512): a smile with the teeth showing."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    """matplotlib's sample grace_hopper.jpg (512x600): an older woman in uniform, a busy
    background."""
    from matplotlib import cbook

    return load_rgb(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def tilted(
    rgb: np.ndarray, degrees: float = 12.0, size: tuple[int, int] = (576, 1024), scale=1.6
) -> np.ndarray:
    """``rgb`` turned by ``degrees`` (counter-clockwise, about the face centre) and scaled by
    ``scale`` on a 9:16 canvas (``size`` = width, height), the face in the upper third as in a
    phone video. Where the picture does not reach, a heavily blurred reflection of it (a
    phone's "blurred background" fill: no flat wedges, and no second recognisable face)."""
    x0, y0, x1, y1 = _face_box(rgb)
    w, h = size
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    m = cv2.getRotationMatrix2D(centre, degrees, scale)
    m[:, 2] += np.array([w / 2, h * 0.28]) - np.array(centre)
    sharp = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    inside = cv2.warpAffine(np.ones(rgb.shape[:2], np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    inside = cv2.GaussianBlur(inside, (0, 0), 2)[..., None]
    fill = cv2.GaussianBlur(sharp, (0, 0), 40) * 0.8
    return (inside * sharp + (1 - inside) * fill).astype(np.uint8)


def small_face(rgb: np.ndarray, face_px: int = 80, size: int = 720) -> np.ndarray:
    """``rgb`` scaled so that its face box is ``face_px`` wide, in a ``size`` square: a
    person far away in a wide shot. Around it a soft grey-blue wall gradient (no other
    face-like texture)."""
    x0, _, x1, _ = _face_box(rgb)
    s = face_px / (x1 - x0)
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    canvas = np.stack([110 + 40 * xx, 120 + 30 * yy, 135 + 20 * xx * yy], axis=-1)
    canvas = canvas.astype(np.uint8)
    h, w = small.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2 + size // 8
    # feathered edge, so the picture's border is no hard rectangle
    alpha = np.zeros((h, w), np.float32)
    alpha[3:-3, 3:-3] = 1
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)[..., None]
    region = canvas[top : top + h, left : left + w].astype(np.float32)
    canvas[top : top + h, left : left + w] = (alpha * small + (1 - alpha) * region).astype(np.uint8)
    return canvas


def large_face(rgb: np.ndarray, size: int = 1080, fill: float = 0.8) -> np.ndarray:
    """A square crop around the face, upscaled so the face box is ``fill`` of a ``size``
    square (a close-up; the forehead and chin reach the frame's edges)."""
    x0, y0, x1, y1 = _face_box(rgb)
    side = (x1 - x0) / fill
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * side
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)
    return cv2.warpAffine(
        rgb, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


#: the moving speaker: seconds, yaw amplitude (degrees), zoom range, pan amplitude (face widths)
MOVE_SECONDS, YAW_DEG, ZOOM, PAN = 9.0, 20.0, (1.15, 1.45), 0.35


def _yaw_homography(cx: float, cy: float, theta: float, focal: float) -> np.ndarray:
    """Picture -> picture map of a plane through (cx, cy) turned by ``theta`` (radians) about
    the vertical axis through that point, seen by a pinhole at ``focal`` px: in coordinates
    centred there, u = X cos t / (1 + X sin t / f), v = Y / (1 + X sin t / f). One side of
    the face comes closer (wider, taller), the other goes away and shrinks."""
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    turn = np.array(
        [[math.cos(theta), 0, 0], [0, 1, 0], [math.sin(theta) / focal, 0, 1]], np.float64
    )
    return centre @ turn @ back


def moving_speaker_video(
    rgb: np.ndarray, seconds: float = MOVE_SECONDS, fps: int = 25, size: int = 512
) -> bytes:
    """A speaker video made from one portrait: the camera pans (a slow ellipse), zooms in and
    out (ZOOM), and the head turns left and right by up to YAW_DEG degrees, over ``seconds``;
    H.264 MP4, CRF 16, ``size`` square.

    The turn is an APPROXIMATION: a real yaw rotates a 3-D head (the nose moves across the
    cheek, one ear disappears); here the face region is treated as a flat card turned about
    the vertical axis through the face centre (``_yaw_homography``: the far side compressed
    horizontally and vertically, the near side widened). The card's warp is faded into the
    unwarped picture with a smooth weight (1 inside the face ellipse, 0 from 1.6 face widths
    out), applied to the displacement field, not to the pixels: no ghost, no seam; hair and
    background just bend a little. Good enough to move the landmarks as a turn does (the
    mouth's far corner comes closer to the nose, the face narrows by cos(yaw)), which is what
    a face tracker and a mouth renderer must follow.
    """
    x0, y0, x1, y1 = _face_box(rgb)
    fw = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = rgb.shape[:2]
    # source-picture grid and the turn's weight there (computed once)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xs - cx) / (0.75 * fw), (ys - cy) / (0.95 * fw))
    weight = np.clip((1.6 - r) / 0.6, 0, 1)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep: no kink at either edge
    frames = round(seconds * fps)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "16"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            t = i / fps
            phase = 2 * math.pi * t / seconds
            theta = math.radians(YAW_DEG) * math.sin(2 * phase)  # two turns each way
            zoom = ZOOM[0] + (ZOOM[1] - ZOOM[0]) * (0.5 - 0.5 * math.cos(phase))
            # the view: a square window of side min(h, w) / zoom around a panning centre,
            # kept inside the picture (no border ever shows)
            side = min(h, w) / zoom
            px = cx + PAN * fw * math.sin(phase)
            py = cy + 0.5 * PAN * fw * math.sin(2 * phase + 1.0)
            px = float(np.clip(px, side / 2, w - side / 2))
            py = float(np.clip(py, side / 2, h - side / 2))
            # inverse maps: output pixel -> source picture (view), then the inverse turn there
            s = side / size
            u, v = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
            sx = px - side / 2 + (u + 0.5) * s - 0.5
            sy = py - side / 2 + (v + 0.5) * s - 0.5
            inv = np.linalg.inv(_yaw_homography(cx, cy, theta, focal=3.0 * fw))
            den = inv[2, 0] * sx + inv[2, 1] * sy + inv[2, 2]
            tx = (inv[0, 0] * sx + inv[0, 1] * sy + inv[0, 2]) / den
            ty = (inv[1, 0] * sx + inv[1, 1] * sy + inv[1, 2]) / den
            wgt = cv2.remap(weight, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            mx = (sx + wgt * (tx - sx)).astype(np.float32)
            my = (sy + wgt * (ty - sy)).astype(np.float32)
            frame = cv2.remap(rgb, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def hard_portraits() -> dict[str, bytes]:
    """The harder stills, label -> JPEG: teeth (astronaut, straight and tilted on 9:16),
    other faces (Grace Hopper; the cameraman, not frontal), a small face in a wide frame and
    a close-up. (samples/portrait.jpg IS scikit-image's astronaut, at rest; the new astronaut
    cases are about the smile's teeth, the tilt and the frame.)"""
    base = load_rgb(PORTRAIT)
    smile = astronaut()
    return {
        "astronaut (smile, teeth)": _jpeg(smile),
        "astronaut tilted 12 deg, 1.6x on 576x1024 (9:16)": _jpeg(tilted(smile)),
        "grace_hopper.jpg": _jpeg(grace_hopper()),
        "cameraman (3/4 view, grey, 2.6x crop)": _jpeg(cameraman()),
        "portrait.jpg, face 80 px in 720x720": _jpeg(small_face(base)),
        "portrait.jpg close-up, face 80% of 1080x1080": _jpeg(large_face(base)),
    }


def cameraman(size: int = 512) -> np.ndarray:
    """scikit-image's cameraman (grey, 512x512, a man in a three-quarter view behind a
    camera), cropped around his face and upscaled: a face ~150 px wide, male, not frontal,
    soft (the original face is ~60 px)."""
    from skimage import data

    grey = data.camera()
    up = cv2.resize(grey, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    x0, y0, x1, y1 = (v / 2 for v in _face_box(cv2.cvtColor(up, cv2.COLOR_GRAY2RGB)))
    side = 2.6 * (x1 - x0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.25 * (x1 - x0)
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)
    crop = cv2.warpAffine(
        grey, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
