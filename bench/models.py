"""``python -m bench.models`` (also a section of ``python -m bench``): the models' algorithms
timed in this process, without Triton or the server.

What the model tests used to assert on wall-clock time is measured here instead (tests/models
keeps the behaviour): per frame, the median over ``BENCH_MODEL_FRAMES`` frames (default 300)
after a short warm-up, with the 90th percentile beside it, for

* mouth motion (speech -> mouth openness, ``MouthMotion.push`` fed one frame of audio a time);
* the mouth warp alone (``MouthRenderer.render(openness)``) and the full talking-avatar frame
  (``MouthRenderer.render(openness, viseme shapes)`` then ``FaceMotion.apply`` for eyelids, brows
  and head), each at 512x512 (the sample portrait as is) and 1280x720 (the portrait fitted as
  the server fits it: ``framing.place``/``render_fitted``, crop, landmarks mapped, not found
  again);
* the one-off costs per portrait: face analysis (MediaPipe detection + 478-point mesh) and
  renderer setup;
* lipsync's per-frame work on a moving head (the portrait panned and zoomed over the frames):
  face tracking (``FaceTracker.mesh``) and the mouth re-animation (``reanimate``), at 512x512,
  1280x720 and 1920x1080.

The figures move with the machine's load; nothing here asserts on time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from .inputs import PORTRAIT, ROOT, machine, speech
from .table import Row, markdown, pct

#: the model folders hold plain modules, not packages (as in tests/models/conftest.py)
MODEL_DIRS = [
    ROOT / f"model_repository/{m}/1" for m in ("talking_avatar", "face_landmarks", "lipsync")
]
HEADER = ("measure", "median", "p90", "target (old unit-test bounds at 512x512; issue 11's)")
FPS = 25.0
WARM_UP = 10


def _models_importable() -> None:
    for model_dir in reversed(MODEL_DIRS):
        if str(model_dir) not in sys.path:
            sys.path.insert(0, str(model_dir))


def _per_call_ms(call: Callable, args: Iterable) -> list[float]:
    """Wall time of each call in ms; the first WARM_UP calls are made but not counted."""
    times = []
    for k, arg in enumerate(args):
        start = time.perf_counter()
        call(arg)
        if k >= WARM_UP:
            times.append((time.perf_counter() - start) * 1000)
    return times


def _row(measure: str, times_ms: list[float], bound: str = "") -> Row:
    return Row(measure, _fmt(statistics.median(times_ms)), _fmt(pct(times_ms, 90)), bound)


def _fmt(value_ms: float) -> str:
    return f"{value_ms * 1000:.0f} µs" if value_ms < 1 else f"{value_ms:.2f} ms"


def _portraits() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, list[float]]]:
    """(size, RGB picture, landmarks, mesh, face analysis times) at 512x512, 1280x720 and
    1920x1080 (the fitted pictures' landmarks are the original's mapped, as the server maps
    them; their mesh is found again, which gives the same points within a pixel)."""
    from face_mesh import FaceAnalyzer

    from a2v_server.pipeline import framing

    analyzer = FaceAnalyzer()
    sample = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    face = analyzer.analyze(sample)[0]
    pictures = [(sample, face.landmarks)]
    for out_wh in ((1280, 720), (1920, 1080)):
        placement = framing.place(sample.shape[1::-1], out_wh, face.box, "crop")
        fitted = framing.render_fitted(sample, placement, out_wh)
        pictures.append((fitted, placement.points(face.landmarks)))
    result = []
    for image, landmarks in pictures:
        size = f"{image.shape[1]}x{image.shape[0]}"
        found = analyzer.analyze(image)  # also the warm-up
        if not found:
            raise RuntimeError(f"no face in the {size} portrait")
        times = []
        for _ in range(10):
            start = time.perf_counter()
            analyzer.analyze(image)
            times.append((time.perf_counter() - start) * 1000)
        result.append((size, image, landmarks, found[0].mesh, times))
    return result


def _read_wav(path: Path) -> np.ndarray:
    """16-bit mono WAV -> float32 samples in [-1, 1]."""
    with wave.open(str(path)) as w:
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, np.int16).astype(np.float32) / 32768


def mouth_motion(frames: int, tmp: Path) -> Row:
    from mouth_motion import MouthMotion

    rate = 16000
    x = _read_wav(speech(tmp / "speech.wav", (frames + WARM_UP) / FPS + 0.5, rate))
    hop = int(rate / FPS)
    pieces = [x[i : i + hop] for i in range(0, len(x) - hop + 1, hop)][: frames + WARM_UP]
    times = _per_call_ms(MouthMotion(rate, FPS).push, pieces)
    return _row("mouth motion (speech -> openness), one frame of audio a push", times, "< 0.5 ms")


def renders(frames: int) -> list[Row]:
    return [row for portrait in _portraits() for row in _render_rows(*portrait, frames)]


def _render_rows(
    size: str,
    image: np.ndarray,
    landmarks: np.ndarray,
    mesh: np.ndarray,
    analyze_ms: list[float],
    frames: int,
) -> list[Row]:
    from face_motion import FaceMotion
    from mouth_render import MouthRenderer

    setup = []
    for _ in range(5):
        start = time.perf_counter()
        renderer = MouthRenderer(image, landmarks, mesh)
        face = FaceMotion(image.shape, landmarks, mesh)
        setup.append((time.perf_counter() - start) * 1000)
    openness = [float(a) for a in np.abs(np.sin(np.arange(frames + WARM_UP) * 0.3))]
    shapes = np.array([0.5, 0.2, 0.0, 0.0])
    pose = np.array([1.0, 1.0, 1.0])

    def full(k: int) -> None:
        img = renderer.render(openness[k], shapes)
        face.apply(img, 0.5 * (k % 10 == 0), 0.3, pose)

    first = size == "512x512"
    analysis = _row(
        f"face analysis {size} (MediaPipe detection + 478-point mesh), per picture",
        analyze_ms,
        "<= 20 ms" if size == "1920x1080" else "",
    )
    if size == "1920x1080":  # the avatar renders at most 1280x720 here: analysis only
        return [analysis]
    return [
        _row(
            f"mouth render {size} (openness only)",
            _per_call_ms(renderer.render, openness),
            "< 5 ms" if first else "",
        ),
        _row(
            f"full frame {size} (mouth + visemes + eyelids + brows + 3D head)",
            _per_call_ms(full, range(frames + WARM_UP)),
            "< 8 ms" if first else "",
        ),
        analysis,
        _row(f"renderer setup {size} (mouth warp + face motion), per portrait", setup),
    ]


def lipsync(frames: int) -> list[Row]:
    """Tracking and re-animation per frame of a head that pans and zooms (a new frame each
    time, as in a video), at the sizes users send."""
    from face_mesh import FaceAnalyzer

    analyzer = FaceAnalyzer()
    sample = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    count = min(frames, 150) + WARM_UP
    return [
        row
        for size in ((512, 512), (1280, 720), (1920, 1080))
        for row in _lipsync_rows(analyzer, _moving_head(sample, size, count))
    ]


def _moving_head(sample: np.ndarray, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` frames of ``size`` (width, height): the portrait panning and zooming."""
    width, height = size
    base = min(width, height) / max(sample.shape[:2])
    video = []
    for k in range(count):
        zoom = base * (1.0 + 0.1 * np.sin(k / 20))
        dx = width / 2 - zoom * sample.shape[1] / 2 + 0.05 * width * np.sin(k / 15)
        dy = height / 2 - zoom * sample.shape[0] / 2
        move = np.float32([[zoom, 0, dx], [0, zoom, dy]])
        video.append(cv2.warpAffine(sample, move, size, borderMode=cv2.BORDER_REFLECT))
    return video


def _lipsync_rows(analyzer, video: list[np.ndarray]) -> list[Row]:
    from face_track import FaceTracker
    from video_mouth import reanimate

    tracker = FaceTracker(analyzer, fps=FPS)
    meshes: list = []
    track_ms = _per_call_ms(lambda k: meshes.append(tracker.mesh(k, video[k])), range(len(video)))
    size = f"{video[0].shape[1]}x{video[0].shape[0]}"
    if any(m is None for m in meshes):
        raise RuntimeError(f"the face was lost in the {size} video")
    openness = np.abs(np.sin(np.arange(len(video)) * 0.3))
    render_ms = _per_call_ms(
        lambda k: reanimate(video[k], meshes[k], float(openness[k])), range(len(video))
    )
    return [
        _row(
            f"lipsync face tracking {size}, per frame (moving head)",
            track_ms,
            "<= 5 ms" if size == "1920x1080" else "",
        ),
        _row(f"lipsync mouth re-animation {size}, per frame", render_ms),
    ]


def rows(frames: int | None = None) -> list[Row]:
    """The section's rows (imports the model code; makes its speech input with espeak-ng/sox)."""
    frames = frames or int(os.environ.get("BENCH_MODEL_FRAMES", 300))
    _models_importable()
    with tempfile.TemporaryDirectory(prefix="a2v-bench-models-") as tmp:
        return [mouth_motion(frames, Path(tmp)), *renders(frames), *lipsync(frames)]


def caption(frames: int | None = None) -> str:
    frames = frames or int(os.environ.get("BENCH_MODEL_FRAMES", 300))
    return (
        f"models in-process (no Triton, no server): per frame, median and p90 "
        f"over {frames} frames after {WARM_UP} uncounted; face analysis over 10 pictures, "
        f"renderer setup over 5; portrait {PORTRAIT.name}"
    )


def main() -> int:
    table = rows()
    print(f"a2v model benchmark — {machine()}")
    print(caption())
    print()
    print(markdown(table, HEADER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
