"""Quality measures computed from the outside, on a decoded output file: dlib landmarks
re-detected in every frame, the output's own audio track, pixels against the source video.

Nothing here reads the service's timeline or face box: every figure comes from the MP4 (PyAV)
and, for lipsync, from the source video the benchmark made itself.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

# The measuring model: dlib's HOG detector and 68-point predictor (reference_landmarks.py, the
# product's models before MediaPipe). It is not the product's model, so the product is not
# judged by its own eyes; dlib is a development dependency only, never shipped.
from .reference_landmarks import FaceAnalyzer

#: dlib 68-point indices
INNER_UPPER, INNER_LOWER = (61, 62, 63), (67, 66, 65)
MOUTH_CORNERS = (48, 54)
NON_MOUTH = np.arange(17, 48)  # brows, nose, eyes (the jaw moves with the mouth)
JAW = np.arange(0, 17)
MOUTH = np.arange(48, 68)
#: lags tried by the sync cross-correlation, in frames
MAX_LAG = 10
#: audio envelope floor, dB below the clip's loud level (95th percentile)
FLOOR_DB = 50.0
#: the loud level of a clip is at least this (dB full scale): below it, the whole clip is quiet
QUIET_DBFS = -30.0
#: speech frames are within this many dB of the loud level; silence frames are below -SILENT
SPEECH_DB, SILENT_DB = 25.0, 45.0
#: frames next to speech that count as neither (the mouth's attack and release)
SILENCE_MARGIN = 4

_analyzer: FaceAnalyzer | None = None


def analyzer() -> FaceAnalyzer:
    global _analyzer
    if _analyzer is None:
        _analyzer = FaceAnalyzer(max_analysis_side=640)
    return _analyzer


@dataclass
class Decoded:
    """A decoded MP4: RGB frames with their presentation times, and mono float audio."""

    frames: list[np.ndarray]
    times: np.ndarray  # seconds, per frame (from the container's pts)
    fps: float
    audio: np.ndarray  # mono float32
    rate: int
    audio_start: float  # presentation time of audio[0], seconds


def decode(path: Path | str, audio: bool = True) -> Decoded:
    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time) if frame.time is not None else len(times) / fps)
    samples, rate, start = np.zeros(0, np.float32), 48000, 0.0
    if audio:
        with av.open(str(path)) as container:
            if container.streams.audio:
                astream = container.streams.audio[0]
                rate = astream.codec_context.sample_rate
                resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
                pieces = []
                first = None
                for frame in container.decode(astream):
                    if first is None and frame.time is not None:
                        first = float(frame.time)
                    for out in resampler.resample(frame):
                        pieces.append(out.to_ndarray().reshape(-1))
                for out in resampler.resample(None):
                    pieces.append(out.to_ndarray().reshape(-1))
                samples = np.concatenate(pieces) if pieces else samples
                start = first or 0.0
    return Decoded(frames, np.array(times), fps, samples.astype(np.float32), rate, start)


# --- landmarks ----------------------------------------------------------------------------------
def landmarks(frames: list[np.ndarray]) -> np.ndarray:
    """(n, 68, 2) landmarks of THE face of the clip in every frame; NaN where it is not found.

    dlib also returns weak false positives (e.g. the mission patch on samples/portrait.jpg's
    suit, score ~0.07, larger than the real face), so the face is not "the largest": each
    frame's best-scoring detection gives the clip's anchor (median centre and width), and in
    every frame the best-scoring detection within half a face width of the anchor is taken.
    """
    out = np.full((len(frames), 68, 2), np.nan, np.float32)
    fa = analyzer()
    found = [fa.analyze(frame) for frame in frames]
    best = [max(faces, key=lambda f: f.score) for faces in found if faces]
    if not best:
        return out
    boxes = np.array([f.box for f in best])
    centre = np.median((boxes[:, :2] + boxes[:, 2:]) / 2, axis=0)
    width = float(np.median(boxes[:, 2] - boxes[:, 0]))
    for i, faces in enumerate(found):
        near = [
            f
            for f in faces
            if np.linalg.norm((np.array(f.box[:2]) + f.box[2:]) / 2 - centre) <= width / 2
        ]
        if near:
            out[i] = max(near, key=lambda f: f.score).landmarks
    return out


def mouth_opening(lms: np.ndarray) -> np.ndarray:
    """Inner-lip gap / mouth width per frame (0 = lips touch; ~0.3 = wide open)."""
    gap = np.mean(
        [
            np.linalg.norm(lms[:, u] - lms[:, lo], axis=1)
            for u, lo in zip(INNER_UPPER, INNER_LOWER, strict=True)
        ],
        axis=0,
    )
    width = np.linalg.norm(lms[:, MOUTH_CORNERS[0]] - lms[:, MOUTH_CORNERS[1]], axis=1)
    return gap / np.maximum(width, 1e-6)


# --- audio --------------------------------------------------------------------------------------
def envelope_db(decoded: Decoded) -> np.ndarray:
    """RMS of the output's audio over each frame's display interval [t, t + 1/fps), in dB
    relative to the clip's loud level (its 95th percentile, but at least QUIET_DBFS so that a
    silent clip stays silent), floored at -FLOOR_DB."""
    period = 1.0 / decoded.fps
    rms = np.zeros(len(decoded.times))
    for i, t in enumerate(decoded.times):
        a = round((t - decoded.audio_start) * decoded.rate)
        b = round((t + period - decoded.audio_start) * decoded.rate)
        window = decoded.audio[max(0, a) : max(0, b)]
        rms[i] = math.sqrt(float(np.mean(window.astype(np.float64) ** 2))) if len(window) else 0.0
    db = 20 * np.log10(np.maximum(rms, 1e-9))
    loud = max(float(np.percentile(db, 95)), QUIET_DBFS)
    return np.maximum(db - loud, -FLOOR_DB)


def speech_silence_masks(env_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Speech frames (within SPEECH_DB of the loud level) and silence frames (below -SILENT_DB
    and at least SILENCE_MARGIN frames from any speech-ish frame)."""
    speech = env_db > -SPEECH_DB
    active = env_db > -SILENT_DB
    near = np.convolve(active.astype(float), np.ones(2 * SILENCE_MARGIN + 1), "same") > 0
    return speech, ~near


# --- measures -----------------------------------------------------------------------------------
def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 10 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Sync:
    lag: int  # frames; > 0: the mouth moves after the sound
    corr: float  # Pearson correlation at that lag
    corr_at_zero: float


def sync(opening: np.ndarray, env_db: np.ndarray, max_lag: int = MAX_LAG) -> Sync:
    """Cross-correlate mouth opening with the audio envelope over lags -max_lag..+max_lag:
    at lag L, opening[i + L] is paired with envelope[i]."""
    n = len(opening)
    best = (0, -math.inf)
    values = {}
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            c = _corr(opening[lag:], env_db[: n - lag])
        else:
            c = _corr(opening[: n + lag], env_db[-lag:])
        values[lag] = c
        if math.isfinite(c) and c > best[1]:
            best = (lag, c)
    return Sync(int(best[0]), float(best[1]) if math.isfinite(best[1]) else float("nan"), values[0])


@dataclass
class Openings:
    speech_mean: float
    silence_mean: float
    silence_p95: float
    speech_frames: int
    silence_frames: int


def openings(opening: np.ndarray, env_db: np.ndarray) -> Openings:
    speech, silent = speech_silence_masks(env_db)
    s = opening[speech & np.isfinite(opening)]
    q = opening[silent & np.isfinite(opening)]
    nan = float("nan")
    return Openings(
        float(s.mean()) if len(s) else nan,
        float(q.mean()) if len(q) else nan,
        float(np.percentile(q, 95)) if len(q) else nan,
        len(s),
        len(q),
    )


@dataclass
class Jitter:
    std_px: float  # per-landmark std of position over time (x and y pooled), mean over points
    step_px: float  # RMS frame-to-frame displacement, mean over points
    frames: int


def jitter(lms: np.ndarray, points: np.ndarray = NON_MOUTH) -> Jitter:
    """How much landmarks move on a head that does not move."""
    sel = lms[:, points]
    sel = sel[np.all(np.isfinite(sel), axis=(1, 2))]
    if len(sel) < 3:
        return Jitter(float("nan"), float("nan"), len(sel))
    std = float(np.mean(np.sqrt(np.var(sel, axis=0).sum(axis=1) / 2)))
    steps = np.linalg.norm(np.diff(sel, axis=0), axis=2)
    return Jitter(std, float(np.mean(np.sqrt(np.mean(steps**2, axis=0)))), len(sel))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def face_mask(lms: np.ndarray, shape: tuple[int, int], margin: float = 0.15) -> np.ndarray:
    """True inside the face: the box around all 68 landmarks, widened by ``margin`` of the face
    width on each side, up by the same and down by twice that (the jaw drops when the mouth
    opens)."""
    mask = np.zeros(shape, bool)
    if not np.all(np.isfinite(lms)):
        return mask
    x0, y0 = lms.min(axis=0)
    x1, y1 = lms.max(axis=0)
    m = margin * (x1 - x0)
    h, w = shape
    xa, xb = int(max(0, x0 - m)), int(min(w, x1 + m + 1))
    ya, yb = int(max(0, y0 - m)), int(min(h, y1 + 2 * m + 1))
    mask[ya:yb, xa:xb] = True
    return mask


def psnr_outside_face(
    out_frames: list[np.ndarray], src_frames: list[np.ndarray], src_lms: np.ndarray
) -> np.ndarray:
    """PSNR of the pixels outside the face (mask from the SOURCE frame's landmarks), output
    frame i against source frame i. A frame without a face compares every pixel."""
    values = []
    for i, (out, src) in enumerate(zip(out_frames, src_frames, strict=False)):
        keep = ~face_mask(src_lms[i], out.shape[:2])
        values.append(psnr(out[keep], src[keep]))
    return np.array(values)


# --- music --------------------------------------------------------------------------------------
def keyframes(path: Path | str) -> list[int]:
    """Indices of the H.264 keyframes (in decode order = display order for this encoder)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


def frame_motion(frames: list[np.ndarray], skip: list[int] = ()) -> np.ndarray:
    """Mean absolute grey-level change from the previous frame on a 64x64 downscale (coding
    noise averages out); NaN for the first frame and the ``skip`` frames (keyframes: the
    encoder refreshes the whole picture there, a change that is not motion)."""
    small = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
        for f in frames
    ]
    out = [np.nan] + [
        float(np.mean(np.abs(b.astype(np.float32) - a))) for a, b in itertools.pairwise(small)
    ]
    for i in skip:
        if 0 <= i < len(out):
            out[i] = np.nan
    return np.array(out)


def face_shift(frames: list[np.ndarray], lms: np.ndarray, margin: float = 0.2) -> np.ndarray:
    """(n, 2) sub-pixel translation (x, y; px, y down) of the face region against the first
    frame, by phase correlation of a fixed box around the clip's median landmark box."""
    lo = np.nanmedian(np.nanmin(lms, axis=1), axis=0)
    hi = np.nanmedian(np.nanmax(lms, axis=1), axis=0)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return np.full((len(frames), 2), np.nan)
    m = margin * (hi[0] - lo[0])
    h, w = frames[0].shape[:2]
    x0, y0 = int(max(0, lo[0] - m)), int(max(0, lo[1] - m))
    x1, y1 = int(min(w, hi[0] + m)), int(min(h, hi[1] + m))
    window = cv2.createHanningWindow((x1 - x0, y1 - y0), cv2.CV_64F)

    def crop(f: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[y0:y1, x0:x1].astype(np.float64)

    ref = crop(frames[0])
    return np.array([cv2.phaseCorrelate(ref, crop(f), window)[0] for f in frames])


def autocorr(x: np.ndarray, lag: float) -> float:
    """Normalised autocorrelation of ``x`` at a possibly fractional lag (linear between the
    neighbouring integer lags)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    x = x - x.mean()
    denom = float(np.dot(x, x))
    if denom == 0:
        return float("nan")

    def at(k: int) -> float:
        return float(np.dot(x[: len(x) - k], x[k:]) / denom) if 0 < k < len(x) else float("nan")

    lo = int(math.floor(lag))
    frac = lag - lo
    return at(lo) if frac == 0 else (1 - frac) * at(lo) + frac * at(lo + 1)


def dominant_period(x: np.ndarray, lo: int, hi: int) -> float:
    """Lag (frames) of the highest autocorrelation between ``lo`` and ``hi``, refined by a
    parabola through the peak and its neighbours."""
    values = np.array([autocorr(x, k) for k in range(lo - 1, hi + 2)])
    k = int(np.nanargmax(values[1:-1])) + 1
    a, b, c = values[k - 1], values[k], values[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return lo - 1 + k + float(np.clip(shift, -0.5, 0.5))


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN entries (frames where no face was found, skipped
    frames)."""
    x = np.asarray(x, float).copy()
    ok = np.isfinite(x)
    if ok.sum() >= 2 and not ok.all():
        idx = np.arange(len(x))
        x[~ok] = np.interp(idx[~ok], idx[ok], x[ok])
    return x


@dataclass
class BeatFollow:
    autocorr_beat: float  # at the beat period
    autocorr_half: float  # at half the beat period (a bob: negative)
    tempo_bpm: float  # from the dominant period between 0.5x and 2x the beat period
    profile_range: float  # max - min of the beat-phase folded profile (signal units)
    peak_phase: float  # beat phase (0..1) of that profile's maximum (0 = on the beat)


def beat_follow(
    x: np.ndarray, times: np.ndarray, bpm: float, skip_s: float = 2.0, detrend: bool = False
) -> BeatFollow:
    """How a per-frame motion signal ``x`` (at ``times``) follows a beat at ``bpm`` whose first
    beat is at t = 0. The first ``skip_s`` seconds are left out (the service needs a few beats
    to find the tempo). ``detrend`` removes a moving average over two beats first (for
    positions, which also drift)."""
    fps = 1.0 / float(np.median(np.diff(times)))
    period = fps * 60.0 / bpm
    x = fill_gaps(x)
    if detrend:
        k = 2 * round(period) + 1
        pad = np.pad(x, k // 2, mode="edge")
        x = x - np.convolve(pad, np.ones(k) / k, "valid")
    keep = times >= skip_s
    x, t = x[keep], times[keep]
    lag = dominant_period(x, max(2, int(period / 2)), int(2 * period) + 1)
    phase = (t * bpm / 60.0) % 1.0
    bins = 8
    profile = np.array(
        [np.nanmean(x[(phase >= k / bins) & (phase < (k + 1) / bins)]) for k in range(bins)]
    )
    peak = (int(np.nanargmax(profile)) + 0.5) / bins
    return BeatFollow(
        autocorr(x, period),
        autocorr(x, period / 2),
        60.0 * fps / lag,
        float(np.nanmax(profile) - np.nanmin(profile)),
        peak if peak <= 0.5 else peak - 1.0,
    )


def landmarks_of(path: Path | str) -> np.ndarray:
    """Landmarks of every frame of a video file (for a process pool)."""
    return landmarks(decode(path, audio=False).frames)


def read_audio(path: Path | str, rate: int) -> np.ndarray:
    """Any audio file as mono float32 at ``rate``."""
    pieces = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.float32)


def audio_offset_ms(source: Path | str, decoded: Decoded, max_ms: int = 300) -> float:
    """Where the output's audio track sits against the input audio: the lag (ms, > 0 = later in
    the output) that best aligns their 1 ms amplitude envelopes."""
    per_ms = decoded.rate // 1000
    src = read_audio(source, decoded.rate)

    def env(x: np.ndarray) -> np.ndarray:
        n = len(x) // per_ms
        return np.abs(x[: n * per_ms]).reshape(n, per_ms).mean(axis=1)

    a = env(src)
    lead = round(decoded.audio_start * 1000)  # output audio[0] sits at this time
    b = env(decoded.audio)
    b = np.concatenate([np.zeros(max(0, lead)), b])[max(0, -lead) :]
    best, best_lag = -math.inf, 0
    m = min(len(a), len(b))
    x = a[max_ms : m - max_ms]
    for lag in range(-max_ms, max_ms + 1):
        c = _corr(x, b[max_ms + lag : m - max_ms + lag])
        if math.isfinite(c) and c > best:
            best, best_lag = c, lag
    return float(best_lag)


def rest_opening(image: bytes) -> float:
    """Mouth opening of the largest face in an encoded picture (the portrait at rest)."""
    rgb = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    faces = analyzer().analyze(rgb)
    return float(mouth_opening(faces[0].landmarks[None])[0]) if faces else float("nan")


# --- lower-face sharpness and mouth glitches (lipsync) ------------------------------------------
#: dlib 68: the eyes (for the face's own frame: origin, axis and scale)
LEFT_EYE, RIGHT_EYE = np.arange(36, 42), np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
#: lower-face outline: the jaw from the lower cheek round the chin to the other lower cheek,
#: then back under the nose (right nostril, nose base, left nostril)
LOWER_FACE = (*range(3, 14), 35, 33, 31)
#: the lower-face sharpness ratio's aim (output / source)
SHARPNESS_AIM = 0.85


def inter_ocular(lms: np.ndarray) -> np.ndarray:
    """Distance between the eye centres, px (per frame for (n, 68, 2), or one for (68, 2))."""
    return np.linalg.norm(
        lms[..., RIGHT_EYE, :].mean(axis=-2) - lms[..., LEFT_EYE, :].mean(axis=-2), axis=-1
    )


def lower_face_mask(lms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """True on the skin of the lower face OUTSIDE the lips: inside the jaw-and-nose-base outline
    (LOWER_FACE) shrunk by 0.06 inter-ocular distances (the jaw's edge against the neck or
    background is no skin detail, and the chin moves when the mouth opens), minus the outer
    lips grown by 0.1 inter-ocular distances and down by 0.25 (a rendered mouth may open wider
    than the source's: its lower lip and teeth land there). Empty without landmarks."""
    mask = np.zeros(shape, np.uint8)
    if not np.all(np.isfinite(lms)):
        return mask.astype(bool)
    iod = float(inter_ocular(lms))
    cv2.fillPoly(mask, [np.round(lms[list(LOWER_FACE)]).astype(np.int32)], 1)
    k = max(1, round(0.06 * iod))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
    lips = np.zeros(shape, np.uint8)
    cv2.fillPoly(lips, [np.round(lms[OUTER_LIPS]).astype(np.int32)], 1)
    g = max(1, round(0.1 * iod))
    lips = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1,) * 2))
    drop = round(0.25 * iod)
    lips_down = lips.copy()
    for dy in range(1, drop + 1):  # the lips' area swept downwards: where a dropped lip goes
        lips_down[dy:] |= lips[:-dy]
    return (mask > 0) & (lips_down == 0)


def laplacian_variance(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the grey image's 3x3 Laplacian over ``mask`` (focus / fine-detail measure:
    blur lowers it, sharpening and noise raise it). NaN for fewer than 50 pixels."""
    if mask.sum() < 50:
        return float("nan")
    ys, xs = np.nonzero(mask)
    y0, y1 = max(0, ys.min() - 2), ys.max() + 3
    x0, x1 = max(0, xs.min() - 2), xs.max() + 3
    grey = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(np.var(lap[mask[y0:y1, x0:x1]]))


@dataclass
class Sharpness:
    ratio: float  # median over frames of var(Lap(out)) / var(Lap(src)) on the lower face
    p10: float  # its 10th percentile (the blurriest frames)
    frames: int  # frames measured


def lower_face_sharpness(
    out_frames: list[np.ndarray],
    src_frames: list[np.ndarray],
    src_lms: np.ndarray,
    out_lms: np.ndarray | None = None,
) -> Sharpness:
    """Output frame i against source frame i, each on its own lower-face skin: the mask from
    that frame's landmarks (``lower_face_mask``; the source's for both when ``out_lms`` is not
    given). The mouth warp moves the chin: closing a mouth the source had open lifts the chin's
    edge against the neck into the source's mask, and that edge alone tripled the ratio. 1.0 =
    as sharp as the source; the lips themselves are left out (the renderer redraws them), so
    this sees what the mouth warp and its blending do to the skin around the mouth: blur (< 1)
    or ringing / sharpening (> 1)."""
    ratios = []
    own = out_lms if out_lms is not None else src_lms
    for out, src, lms, out_marks in zip(out_frames, src_frames, src_lms, own, strict=False):
        a = laplacian_variance(out, lower_face_mask(out_marks, out.shape[:2]))
        b = laplacian_variance(src, lower_face_mask(lms, src.shape[:2]))
        if math.isfinite(a) and math.isfinite(b) and b > 1e-6:
            ratios.append(a / b)
    if not ratios:
        return Sharpness(float("nan"), float("nan"), 0)
    r = np.array(ratios)
    return Sharpness(float(np.median(r)), float(np.percentile(r, 10)), len(r))


#: A "fold/glitch" frame: the mouth's shape (the 20 mouth landmarks in the face's own frame:
#: origin between the eyes, x along the eye line, unit = the inter-ocular distance, IOD) sits
#: away from BOTH neighbouring frames by more than GLITCH_IOD (RMS over the 20 points), and
#: the two neighbours are closer to each other than either is to it (GLITCH_RETURN = 1): the
#: frame is the odd one of the three. Smooth motion is never flagged: on a ramp the neighbours
#: are twice as far apart as each is from the middle frame; at the top of an open-close cycle
#: of P frames and amplitude A the middle frame's distance is A (1 - cos(2 pi / P)) / 2. Wide
#: open (0.3 mouth widths ~ 0.26 IOD on the 8 lower-lip points, 0.165 IOD RMS over the 20)
#: at a syllable every 5 frames (5 per second, fast speech) gives 0.055 IOD; dlib's own noise
#: (0.3-0.5 px per point at the bench's IOD of ~40 px for portrait.jpg at 512x512) gives
#: ~0.02. So 0.08 IOD (~3 px at that size) is above both with a margin, and a mouth that pops
#: out by ~0.1 IOD or more for one frame (a fold of the warp, a mouth pasted off its place for
#: a frame, a one-frame jump of the face tracker) and comes back is flagged.
GLITCH_IOD = 0.08
GLITCH_RETURN = 1.0


def mouth_shape(lms: np.ndarray) -> np.ndarray:
    """(n, 20, 2) mouth landmarks in the face's own frame (similarity-normalised by the eyes:
    no pan, zoom or roll left), in inter-ocular distances; NaN where no face."""
    left, right = lms[:, LEFT_EYE].mean(axis=1), lms[:, RIGHT_EYE].mean(axis=1)
    axis = right - left
    iod = np.linalg.norm(axis, axis=1, keepdims=True)
    ex = axis / np.maximum(iod, 1e-6)
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)
    rel = lms[:, MOUTH] - ((left + right) / 2)[:, None]
    x = np.einsum("npk,nk->np", rel, ex) / np.maximum(iod, 1e-6)
    y = np.einsum("npk,nk->np", rel, ey) / np.maximum(iod, 1e-6)
    return np.stack([x, y], axis=2)


@dataclass
class Glitches:
    count: int  # frames flagged
    frames: list[int]  # their indices
    largest: float  # the largest spike (min distance to both neighbours, IOD) of any frame
    #                 whose neighbours agree: the margin to GLITCH_IOD even when count is 0


def glitches(
    lms: np.ndarray, threshold: float = GLITCH_IOD, back: float = GLITCH_RETURN
) -> Glitches:
    """Frames whose mouth jumps away from both neighbours and comes back (see GLITCH_IOD)."""
    x = mouth_shape(lms)

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(np.sum((a - b) ** 2, axis=2), axis=1))

    if len(x) < 3:
        return Glitches(0, [], float("nan"))
    prev = dist(x[1:-1], x[:-2])
    nxt = dist(x[1:-1], x[2:])
    across = dist(x[2:], x[:-2])
    spike = np.minimum(prev, nxt)
    ok = np.isfinite(spike) & np.isfinite(across)
    returns = ok & (across < back * spike)
    flagged = returns & (spike > threshold)
    largest = float(spike[returns].max()) if returns.any() else 0.0
    idx = [int(i) + 1 for i in np.nonzero(flagged)[0]]
    return Glitches(len(idx), idx, largest)
