"""What the models hear, without rendering: kind, voice, phones, visemes, jaw, beats (offline).

``analyze(samples, fps, transcript, parts)`` takes a whole 16 kHz mono clip and returns the
JSON-able dict the ``audio_analysis`` model sends (see config.pbtxt). The analysers are the
talking avatar's own (symlinked modules), run offline over the whole clip instead of streamed:

* voice: silero VAD (voice_activity.py's ONNX session and hysteresis) with the clip cut into 8
  lanes decoded as one batch (each lane starts 1 s early to settle the recurrent state):
  0.18 s instead of 0.45 s per minute, 0.1 % of the 32 ms decisions differ from the stream.
* phones: PocketSphinx allphone (or, with a transcript, phones.py's JSGF phone grammar: forced
  alignment) decoded offline, one utterance per voiced range (padded, the silences between
  them skipped), ``ds=2, topn=3, pbeam=1e-8`` (beam 1e-10, lw 2) with a unigram phone LM
  (phone-unigram.arpa: the 1-grams of PocketSphinx's en-us-phone.lm.bin). Measured on 58 s of
  espeak speech against the full decode (ds 1, beams 1e-20): ds 2 with beams 1e-10 agrees on
  72 % of the 10 ms phone labels and 83 % of the visemes in 1.39 s; pbeam 1e-9 the same
  (73 %/83 %) in 1.30 s; beam 1e-9 collapses (42 %/51 %), ds 3 loses the phones (11 %), topn 2
  costs 5 %.
  Then (this 2-core machine, shared with another benchmark: CPU times of the analyze() spans
  decoded on one thread, configurations interleaved; agreement as above, phone/viseme, on
  three clips: the 58 s one, 60 s of speech, 60 s of ten espeak voices): the old settings
  70.9/83.0, 70.5/83.2, 66.0/80.1 %. topn 3 + pbeam 1e-8: 68.1/81.2, 68.3/82.0, 65.9/80.2 at
  0.85x the CPU (0.67x the instructions under callgrind: the Gaussian loop is latency-bound).
  The trigram LM's lookups took ~17 % of the search (perf); with its unigrams only: 69.5/82.2,
  68.6/82.5, 65.6/80.1 % at 0.53-0.73x the old CPU. analyze() end to end, paired A/B (old/new
  alternated, 7 runs each, medians, the machine loaded): 60 s of speech 1.49 -> 0.98 s (paired
  ratio 0.69; CPU of all threads 2.22 -> 1.58 s), the 58 s clip 2.00 -> 1.40 s (0.70); 60 s of
  music 0.61 -> 0.57 s; forced alignment unchanged (its settings are not these).
  Tried, no better: maxhmmpf/maxwpf/pl_window/fwdflat (the allphone search reads only beam,
  pbeam, lw, pip, allphone_ci and ascale; maxhmmpf 1000: same labels), remove_noise off (same
  labels), lw 1.5-1.85 (+1 point on one clip, -1.4 on another, more CPU), lw 2.25/3 and beam
  3e-10/5e-10 (visemes 74/50 %, 74/72 %), pbeam 2e-8 (-0.4 more), ds 3 with wider beams (77 %),
  frate 50/67 (65/74 %), compallsen (2x the instructions), the trigram LM as an unquantised ARPA
  file (the same labels, within the timing noise), a bigram LM (65 %), no LM (a phone loop, pip
  0.01: 82.3 %, slower than the unigrams), 16-32 VAD lanes (0.27 vs 0.29 s CPU). Starting the
  phone search during the VAD was not tried: the second core runs the envelope and the jaw then
  (0.15-0.2 s of the VAD's 0.2-0.3 s) and the whole analysis is CPU-bound (wall about the CPU of
  all threads / 2), so only less CPU makes it faster.
  Deviation: the decoder is driven through PocketSphinx's own C API with ctypes (the
  same shared library and configuration keys; the phones are identical to
  ``pocketsphinx.Decoder``'s, checked) because the Cython binding holds the GIL for a whole
  ``process_raw``: two decoding threads took as long as one after the other. Through ctypes
  the GIL is released, so the voiced ranges are decoded by two threads. What needs no voice
  decision (the onset envelope, the beats, the jaw curve) is computed by another thread while
  the VAD runs (onnxruntime on one thread leaves the second core idle): 60 s of espeak speech
  0.99 -> 0.87 s here (61x -> 69x).
  Forced alignment of long clips drifts: on 58 s of speech the grammar's best path reached
  544 of 660 phones (wide beams) or ~110 (default beams) — the same search the avatar streams.
* beats: beats.py's onset envelope (24 log bands, positive log flux, mean removed against a
  1 s running average) from one STFT of the whole clip; tempo from the autocorrelation of the
  whole envelope (60-180 BPM, beats.py's prior) whose peak height is ``beat_confidence``; beats
  by dynamic programming over the whole envelope (Ellis 2007); the tempo then refined by a
  least-squares line through the beat times; downbeats: the phase of 4 whose beats carry the
  most onset and low-band (< 200 Hz) flux; onsets: envelope peaks over an adaptive threshold,
  >= 50 ms apart.
* kind: audio_kind.py's rules on the whole clip (``kind``) and on 1 s blocks with the 4 s
  around each (``segments``), smoothed (a block between two equal neighbours takes theirs)
  and merged.
* jaw: mouth_motion.py's MouthMotion at FPS over the whole clip.

Run as a script (``python analysis.py FILE.wav|FILE.f32 [--parts ...]``) it times analyze().
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections.abc import Iterable

import numpy as np
from audio_kind import NAMES as KIND_NAMES
from audio_kind import AudioKind
from beats import _BANDS, _MAX_LAG, _MIN_LAG, _PRIOR_CENTRE, HOP, WIN
from mouth_motion import MouthMotion
from phones import _model_dir, transcript_phones
from shared import MAX_FPS, SAMPLE_RATE, InvalidRequest, frame_count
from visemes import REST, frame_viseme
from voice_activity import _CONTEXT, _OFF, _ON, WINDOW, _session

ALL = ("kind", "voice", "phones", "jaw", "beats")
MAX_TRANSCRIPT = 100_000
BEATS_PER_BAR = 4

_VAD_LANES = 8
_VAD_WARM = 32  # windows (~1 s) each lane decodes before its own range
_PAD_S = 0.15  # audio decoded on each side of a voiced range
_JOIN_S = 0.3  # voiced ranges closer than this are decoded as one utterance
_PHONE_THREADS = 2
_MAX_UTT_S = 12.0
_KIND_BLOCK_S = 1.0
_KIND_CONTEXT_S = 2.0  # each side of a block
#: below this periodicity there is no steady beat: the height audio_kind.py calls a (weaker)
#: beat. Speech measured 0.05-0.22 (espeak with pauses: 0.22, which beats.py's own 0.2, made
#: for a head bob, took for 153 BPM); the synthetic beat tracks 0.54-0.96
_MIN_CONFIDENCE = 0.3


# --- input ---------------------------------------------------------------------------------
def parse_parts(text: str | None) -> tuple[str, ...]:
    """``"kind,beats"`` -> ("kind", "beats"); None or blank -> all parts."""
    if text is None or not text.strip():
        return ALL
    asked = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = sorted(set(asked) - set(ALL))
    if unknown:
        raise InvalidRequest(f"unknown PARTS {unknown}: choose from {','.join(ALL)}")
    return tuple(p for p in ALL if p in asked)


def _check(samples, fps: float, transcript: str | None, parts: Iterable[str]):
    if samples is None:
        raise InvalidRequest("AUDIO is missing")
    x = np.asarray(samples, np.float32).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise InvalidRequest("AUDIO contains NaN or infinite samples")
    fps = float(fps)
    if not (math.isfinite(fps) and 1.0 <= fps <= MAX_FPS):
        raise InvalidRequest(f"FPS must be within 1..{MAX_FPS:g}, got {fps:g}")
    if transcript is not None and len(transcript) > MAX_TRANSCRIPT:
        raise InvalidRequest(f"TRANSCRIPT is longer than {MAX_TRANSCRIPT} characters")
    parts = tuple(parts)
    unknown = sorted(set(parts) - set(ALL))
    if unknown:
        raise InvalidRequest(f"unknown PARTS {unknown}: choose from {','.join(ALL)}")
    return np.clip(x, -1.0, 1.0), fps, (transcript or "").strip() or None, set(parts)


def _ms(t: float) -> float:
    return round(float(t), 3)


# --- voice ---------------------------------------------------------------------------------
def voice_probs(x: np.ndarray) -> np.ndarray:
    """Silero's voice probability per 512-sample window (window k: samples [512k, 512k+512)),
    the clip decoded as ``_VAD_LANES`` lanes of one batch."""
    n = -(-x.size // WINDOW)
    if n == 0:
        return np.zeros(0)
    xp = np.zeros(_CONTEXT + n * WINDOW, np.float32)
    xp[_CONTEXT : _CONTEXT + x.size] = x
    # window k's network input: the 64 samples before it, then the window
    frames = np.lib.stride_tricks.as_strided(
        xp, shape=(n, _CONTEXT + WINDOW), strides=(WINDOW * 4, 4), writeable=False
    )
    lanes = max(1, min(_VAD_LANES, n // (4 * _VAD_WARM)))
    per = -(-n // lanes)
    starts = np.array([max(b * per - _VAD_WARM, 0) for b in range(lanes)])
    own = np.arange(lanes) * per  # a lane's result counts from here
    steps = int(per + (own - starts).max())
    sess = _session()
    state = np.zeros((2, lanes, 128), np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    probs = np.zeros(n)
    zero = np.zeros((lanes, _CONTEXT + WINDOW), np.float32)
    for j in range(steps):
        k = starts + j
        inside = k < n
        batch = zero.copy()
        batch[inside] = frames[k[inside]]
        out, state = sess.run(None, {"input": batch, "state": state, "sr": sr})
        keep = inside & (k >= own) & (k < own + per)
        probs[k[keep]] = np.asarray(out).reshape(-1)[keep]
    return probs


def voiced_windows(probs: np.ndarray) -> np.ndarray:
    """voice_activity.py's hysteresis over the probabilities."""
    on = False
    out = np.zeros(probs.size, bool)
    for k, p in enumerate(probs.tolist()):
        if on and p < _OFF:
            on = False
        elif not on and p > _ON:
            on = True
        out[k] = on
    return out


def _ranges(mask: np.ndarray, step_s: float, duration: float) -> list[tuple[float, float]]:
    """Runs of True in ``mask`` (one entry per ``step_s``) as (start, end) seconds."""
    if not mask.size:
        return []
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(s * step_s, min(e * step_s, duration)) for s, e in zip(starts, ends, strict=True)]


# --- phones: PocketSphinx's C API, without the GIL -----------------------------------------
_LIB = None
_P = ctypes.c_void_p
#: the unigrams of PocketSphinx's en-us-phone.lm.bin (see the module docstring)
_PHONE_LM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "phone-unigram.arpa")


def _lib():
    global _LIB
    if _LIB is None:
        from pocketsphinx import _pocketsphinx

        lib = ctypes.CDLL(_pocketsphinx.__file__)  # CDLL: calls release the GIL
        sigs = {
            "ps_config_init": (_P, [_P]),
            "ps_config_set_str": (_P, [_P, ctypes.c_char_p, ctypes.c_char_p]),
            "ps_config_set_float": (_P, [_P, ctypes.c_char_p, ctypes.c_double]),
            "ps_config_set_int": (_P, [_P, ctypes.c_char_p, ctypes.c_long]),
            "ps_config_set_bool": (_P, [_P, ctypes.c_char_p, ctypes.c_int]),
            "ps_config_free": (ctypes.c_int, [_P]),
            "ps_init": (_P, [_P]),
            "ps_free": (ctypes.c_int, [_P]),
            "ps_start_utt": (ctypes.c_int, [_P]),
            "ps_end_utt": (ctypes.c_int, [_P]),
            "ps_process_raw": (ctypes.c_int, [_P, _P, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]),
            "ps_seg_iter": (_P, [_P]),
            "ps_seg_next": (_P, [_P]),
            "ps_seg_word": (ctypes.c_char_p, [_P]),
            "ps_seg_frames": (
                None,
                [_P, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
            ),
            "ps_lookup_word": (ctypes.c_char_p, [_P, ctypes.c_char_p]),
            "ps_add_word": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]),
            "ps_add_jsgf_string": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p]),
            "ps_activate_search": (ctypes.c_int, [_P, ctypes.c_char_p]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _LIB = lib
    return _LIB


class Sphinx:
    """One PocketSphinx decoder (phones.py's settings) driven through its C API."""

    def __init__(self, transcript: str | None = None):
        lib = self._lib = _lib()
        md = _model_dir()
        cfg = lib.ps_config_init(None)
        settings: dict[str, object] = {
            "hmm": os.path.join(md, "en-us"),
            "loglevel": "FATAL",
            "bestpath": False,
        }
        if transcript:  # (ds 2 loses the alignment: 4 of 51 phones on a 7 s sentence)
            settings.update(
                lm=None, dict=os.path.join(md, "cmudict-en-us.dict"), fsgusefiller=False
            )
        else:
            settings.update(
                allphone=_PHONE_LM,
                lm=None,
                dict=None,
                beam=1e-10,
                pbeam=1e-8,
                lw=2.0,
                backtrace=True,
                ds=2,
                topn=3,
            )
        for key, value in settings.items():
            k = key.encode()
            if value is None or isinstance(value, str):
                lib.ps_config_set_str(cfg, k, None if value is None else value.encode())
            elif isinstance(value, bool):
                lib.ps_config_set_bool(cfg, k, int(value))
            elif isinstance(value, int):
                lib.ps_config_set_int(cfg, k, value)
            else:
                lib.ps_config_set_float(cfg, k, float(value))  # type: ignore[arg-type]
        self._cfg = cfg
        self._ps = lib.ps_init(cfg)
        if not self._ps:
            lib.ps_config_free(cfg)
            raise RuntimeError("PocketSphinx failed to start")
        self.aligned = False
        if transcript:
            self.aligned = self._grammar(transcript)

    def _grammar(self, transcript: str) -> bool:
        """phones.py's forced-alignment grammar: each phone a one-phone word."""
        lib, ps = self._lib, self._ps

        def lookup(word: str) -> str | None:
            pron = lib.ps_lookup_word(ps, word.encode())
            return pron.decode() if pron else None

        words = transcript_phones(transcript, lookup)
        if not words:
            return False
        for p in sorted({p for w in words for p in w} - {"SIL"}):
            lib.ps_add_word(ps, f"ph_{p.lower()}".encode(), p.encode(), 0)
        lib.ps_add_word(ps, b"ph_sil", b"SIL", 1)
        body = " ".join("[ph_sil] " + " ".join(f"ph_{p.lower()}" for p in w) for w in words)
        jsgf = f"#JSGF V1.0;\ngrammar a;\npublic <s> = {body} [ph_sil];\n"
        if lib.ps_add_jsgf_string(ps, b"align", jsgf.encode()) < 0:
            return False
        return lib.ps_activate_search(ps, b"align") >= 0

    def decode(self, pcm: np.ndarray, offset_s: float) -> list[tuple[str, float, float]]:
        """Phone segments of one utterance (int16 samples), times + ``offset_s``."""
        lib, ps = self._lib, self._ps
        pcm = np.ascontiguousarray(pcm, np.int16)
        lib.ps_start_utt(ps)
        lib.ps_process_raw(ps, pcm.ctypes.data, pcm.size, 0, 1)
        if not self.aligned:
            lib.ps_end_utt(ps)
        # The alignment grammar's final state is rarely reached (the avatar reads the partial
        # path too); its best partial path is read before ending the utterance.
        segs = []
        sf, ef = ctypes.c_int(), ctypes.c_int()
        it = lib.ps_seg_iter(ps)
        while it:
            word = lib.ps_seg_word(it).decode()
            lib.ps_seg_frames(it, ctypes.byref(sf), ctypes.byref(ef))
            it = lib.ps_seg_next(it)
            if word.startswith("ph_"):
                word = word[3:].upper()
            if word == "(NULL)":
                continue
            if word.startswith(("+", "<", "[")):
                word = "SIL"
            segs.append((word, offset_s + sf.value * 0.01, offset_s + (ef.value + 1) * 0.01))
        if self.aligned:
            lib.ps_end_utt(ps)
        return segs

    def close(self) -> None:
        if self._ps:
            self._lib.ps_free(self._ps)
            self._lib.ps_config_free(self._cfg)
            self._ps = None

    def __del__(self) -> None:
        self.close()


_POOL: list[Sphinx] = []  # idle allphone decoders (their setup costs ~15 ms)
_POOL_LOCK = threading.Lock()


def _borrow() -> Sphinx:
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    return Sphinx()


def _give_back(dec: Sphinx) -> None:
    with _POOL_LOCK:
        _POOL.append(dec)


def decode_ranges(
    x: np.ndarray, ranges: list[tuple[float, float]], transcript: str | None = None
) -> tuple[list[tuple[str, float, float]], bool, list[threading.Thread]]:
    """Start decoding ``ranges`` (seconds) of ``x``; returns (segments filled in when the
    threads end, aligned, the threads). With a transcript: one aligned utterance."""
    out: list[tuple[str, float, float]] = []
    if not ranges:
        return out, False, []
    pcm = (x * 32767.0).astype(np.int16)
    if transcript:
        dec = Sphinx(transcript)
        if dec.aligned:
            a, b = int(ranges[0][0] * SAMPLE_RATE), int(ranges[-1][1] * SAMPLE_RATE)

            def align() -> None:
                try:
                    out.extend(dec.decode(pcm[a:b], a / SAMPLE_RATE))
                finally:
                    dec.close()

            thread = threading.Thread(target=align, daemon=True)
            thread.start()
            return out, True, [thread]
        dec.close()
    # Balance the ranges over the threads by length, each thread's in time order.
    lanes: list[list[tuple[float, float]]] = [[] for _ in range(_PHONE_THREADS)]
    load = [0.0] * _PHONE_THREADS
    for r in sorted(ranges, key=lambda r: r[0] - r[1]):
        i = load.index(min(load))
        lanes[i].append(r)
        load[i] += r[1] - r[0]
    results: list[list[tuple[str, float, float]]] = [[] for _ in lanes]

    def work(i: int) -> None:
        dec = _borrow()
        try:
            for a, b in sorted(lanes[i]):
                i0, i1 = int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)
                results[i].extend(dec.decode(pcm[i0:i1], i0 / SAMPLE_RATE))
        finally:
            _give_back(dec)

    threads = [
        threading.Thread(target=work, args=(i,), daemon=True)
        for i, lane in enumerate(lanes)
        if lane
    ]
    for t in threads:
        t.start()

    class _Joined(threading.Thread):  # collects the lanes once every worker is done
        def run(self) -> None:
            for t in threads:
                t.join()
            out.extend(sorted((s for r in results for s in r), key=lambda s: s[1]))

    joined = _Joined(daemon=True)
    joined.start()
    return out, False, [joined]


def _decode_spans(
    voiced: list[tuple[float, float]], probs: np.ndarray, duration: float
) -> list[tuple[float, float]]:
    """Utterances to decode: voiced ranges padded, joined when close, longer ones cut at their
    least voice-like 32 ms window in the middle half (utterances <= _MAX_UTT_S; several let
    the threads share the work)."""
    spans: list[tuple[float, float]] = []
    for a, b in voiced:
        a, b = max(a - _PAD_S, 0.0), min(b + _PAD_S, duration)
        if spans and a - spans[-1][1] < _JOIN_S:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    step = WINDOW / SAMPLE_RATE
    out: list[tuple[float, float]] = []
    while spans:
        a, b = spans.pop(0)
        if b - a <= _MAX_UTT_S:
            out.append((a, b))
            continue
        k0, k1 = int((a + 0.25 * (b - a)) / step), int((a + 0.75 * (b - a)) / step)
        cut = (k0 + int(np.argmin(probs[k0:k1]))) * step + step / 2
        spans[:0] = [(a, cut), (cut, b)]
    return out


def viseme_spans(segments: list[tuple[str, float, float]], duration: float) -> list[dict]:
    """Contiguous viseme spans over [0, duration]: each phone's viseme (visemes.py's rules:
    closures, coarticulated consonants), REST in silences, equal neighbours merged."""
    spans: list[list] = []

    def add(v: int, a: float, b: float) -> None:
        a, b = max(a, 0.0), min(b, duration)
        if b <= a:
            return
        if spans and spans[-1][0] == v:
            spans[-1][2] = b
        else:
            spans.append([v, a, b])

    t = 0.0
    for i, (phone, s, e) in enumerate(segments):
        s = max(s, t)
        if s > t:
            add(REST, t, s)
        if e <= s:
            continue
        v = REST if phone == "SIL" else frame_viseme(segments[max(i - 4, 0) : i + 5], s, e)
        add(v, s, e)
        t = e
    add(REST, t, duration)
    # rounded to the ms, kept contiguous
    out = []
    for v, a, b in spans:
        a, b = _ms(a), _ms(b)
        if b > a:
            if out:
                a = out[-1]["end"]
            out.append({"viseme": int(v), "start": a, "end": b})
    if out:
        out[-1]["end"] = _ms(duration)
    return out


# --- beats ---------------------------------------------------------------------------------
class Envelope:
    """beats.py's per-hop features for the whole clip: hop k is the 512-sample window ending at
    sample (k + 1) * 160 (zeros before the clip and after it), as BeatTracker after flush()."""

    def __init__(self, x: np.ndarray):
        n = x.size
        k = -(-n // HOP)
        self.k = k
        if k == 0:
            z = np.zeros(0)
            self.onset = self.level_db = self.flatness = self.low_flux = z
            return
        xp = np.zeros((k - 1) * HOP + WIN, np.float32)
        xp[WIN - HOP : WIN - HOP + n] = x
        frames = np.lib.stride_tricks.as_strided(
            xp, shape=(k, WIN), strides=(HOP * 4, 4), writeable=False
        )
        spec = np.abs(np.fft.rfft(frames * np.hanning(WIN).astype(np.float32), axis=1)) ** 2
        spec = spec.astype(np.float64)
        freqs = np.fft.rfftfreq(WIN, 1.0 / SAMPLE_RATE)
        band_of = np.digitize(freqs, np.geomspace(60.0, 7600.0, _BANDS + 1)) - 1
        fold = np.zeros((freqs.size, _BANDS))
        valid = (band_of >= 0) & (band_of < _BANDS)
        fold[np.flatnonzero(valid), band_of[valid]] = 1.0
        logb = np.log10(spec @ fold + 1e-9)
        total = spec.sum(1) / (WIN * 0.375 * WIN / 2)
        self.level_db = 10.0 * np.log10(total + 1e-12)
        sp = spec[:, 5:240] + 1e-12
        self.flatness = np.exp(np.mean(np.log(sp), 1)) / np.mean(sp, 1)
        rise = np.maximum(np.diff(logb, axis=0), 0.0)
        flux = np.concatenate(([0.0], rise.sum(1)))
        low = int(np.searchsorted(np.geomspace(60.0, 7600.0, _BANDS + 1), 200.0))
        self.low_flux = np.concatenate(([0.0], rise[:, :low].sum(1)))
        # beats.py's running average (one pole, 1 s), then the positive part
        avg = np.empty(k)
        a = 0.0
        for i, f in enumerate(flux.tolist()):
            a += 0.01 * (f - a)
            avg[i] = a
        self.onset = np.maximum(flux - avg, 0.0)

    @staticmethod
    def time(k) -> np.ndarray:
        """Centre of hop k's window, seconds (BeatTracker.hop_time)."""
        return ((np.asarray(k) + 1) * HOP - WIN / 2) / SAMPLE_RATE


def periodicity(env: np.ndarray) -> tuple[float, float]:
    """(beat period in hops (sub-hop), autocorrelation peak height 0..1) of an onset envelope,
    beats.py's tempo estimate; (0, 0) when too short or flat."""
    if env.size < 2 * _MAX_LAG or env.std() < 1e-6:
        return 0.0, 0.0
    e = env - env.mean()
    nfft = 1 << int(2 * e.size - 1).bit_length()
    f = np.fft.rfft(e, nfft)
    ac = np.fft.irfft(f * np.conj(f), nfft)[: _MAX_LAG + 2]
    ac = ac / (ac[0] + 1e-12)
    lags = np.arange(_MIN_LAG, _MAX_LAG + 1)
    prior = np.exp(-0.5 * (np.log2(lags / _PRIOR_CENTRE) / 0.9) ** 2)
    best = int(lags[np.argmax(ac[lags] * prior)])
    y0, y1, y2 = ac[best - 1], ac[best], ac[best + 1]
    d = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if (y0 - 2 * y1 + y2) < 0 else 0.0
    return best + float(np.clip(d, -0.5, 0.5)), float(max(ac[best], 0.0))


def track_beats(onset: np.ndarray, period: float, tightness: float = 100.0) -> np.ndarray:
    """Beat hops by dynamic programming (Ellis 2007): each beat's score is its onset strength
    plus the best earlier beat's score, penalised by how far the gap is from the period."""
    n = onset.size
    if n == 0 or period <= 0:
        return np.zeros(0, int)
    env = onset / (onset.std() + 1e-12)
    lo, hi = max(int(round(period / 2)), 1), int(round(2 * period))
    gaps = np.arange(lo, hi + 1)
    penalty = -tightness * np.log(gaps / period) ** 2
    score = env.copy()
    back = np.full(n, -1)
    for t in range(lo, n):
        cand = t - gaps
        ok = cand >= 0
        c = cand[ok]
        s = score[c] + penalty[ok]
        j = int(np.argmax(s))
        if s[j] > 0:
            score[t] = env[t] + s[j]
            back[t] = c[j]
    # the last beat: the best score within the final period, on a real onset
    tail = np.arange(max(n - int(round(period)), 0), n)
    t = int(tail[np.argmax(score[tail])])
    beats = [t]
    while back[t] >= 0:
        t = int(back[t])
        beats.append(t)
    out = np.array(beats[::-1])
    # no beats carried past the music's ends: trim those without an onset of their own
    strong = env[out] >= 0.5 * np.median(env[out])
    if strong.any():
        first, last = np.flatnonzero(strong)[[0, -1]]
        out = out[first : last + 1]
    return out


def pick_onsets(onset: np.ndarray, min_gap: int = 5) -> np.ndarray:
    """Peaks of the onset envelope above an adaptive threshold (local mean + std over 1 s),
    at least ``min_gap`` hops (50 ms) apart, the stronger first."""
    n = onset.size
    if n < 3:
        return np.zeros(0, int)
    half = 50
    c1 = np.concatenate(([0.0], np.cumsum(onset)))
    c2 = np.concatenate(([0.0], np.cumsum(onset**2)))
    idx = np.arange(n)
    a, b = np.maximum(idx - half, 0), np.minimum(idx + half + 1, n)
    cnt = b - a
    mean = (c1[b] - c1[a]) / cnt
    std = np.sqrt(np.maximum((c2[b] - c2[a]) / cnt - mean**2, 0.0))
    floor = 0.05 * onset.max()
    peak = np.zeros(n, bool)
    peak[1:-1] = (onset[1:-1] >= onset[:-2]) & (onset[1:-1] > onset[2:])
    cand = np.flatnonzero(peak & (onset > mean + std) & (onset > floor))
    taken: list[int] = []
    busy = np.zeros(n, bool)
    for k in cand[np.argsort(-onset[cand], kind="stable")]:
        if not busy[k]:
            taken.append(int(k))
            busy[max(k - min_gap + 1, 0) : k + min_gap] = True
    return np.sort(np.array(taken, int))


def beat_analysis(env: Envelope) -> dict:
    period, confidence = periodicity(env.onset)
    out = {
        "tempo": 0.0,
        "beats": [],
        "downbeats": [],
        "beats_per_bar": BEATS_PER_BAR,
        "beat_confidence": round(min(confidence, 1.0), 3),
        "onsets": [_ms(t) for t in Envelope.time(pick_onsets(env.onset))],
    }
    if confidence < _MIN_CONFIDENCE or period <= 0:
        return out
    hops = track_beats(env.onset, period)
    times = Envelope.time(hops)
    if times.size >= 3:  # the tempo from a line through the beat times
        idx = np.round((times - times[0]) / (period * HOP / SAMPLE_RATE))
        if np.all(np.diff(idx) > 0):
            slope = np.polyfit(idx, times, 1)[0]
            if slope > 0:
                period = slope * SAMPLE_RATE / HOP
    strength = env.onset / (env.onset.mean() + 1e-12) + env.low_flux / (env.low_flux.mean() + 1e-12)
    phase = max(
        range(BEATS_PER_BAR),
        key=lambda m: (
            float(strength[hops[m::BEATS_PER_BAR]].mean()) if hops[m::BEATS_PER_BAR].size else -1.0
        ),
    )
    out["tempo"] = round(60.0 * SAMPLE_RATE / (HOP * period), 2)
    out["beats"] = [_ms(t) for t in times]
    out["downbeats"] = [_ms(t) for t in times[phase::BEATS_PER_BAR]]
    return out


# --- kind ----------------------------------------------------------------------------------
def _kind_of(level_db, flatness, voiced, period_height: float) -> int:
    judge = AudioKind()
    active = level_db >= -50.0
    judge.active_hops = int(active.sum())
    judge.tonal_hops = int((active & (flatness < 0.05)).sum())
    judge.voiced_active_hops = int((active & voiced).sum())
    return judge.update(period_height)


def kind_analysis(env: Envelope, voiced_win: np.ndarray, duration: float) -> dict:
    """The whole clip's kind and the kind of 1 s blocks (4 s of context each), merged."""
    if env.k == 0:
        return {"kind": "other", "segments": []}
    # the VAD decision at each hop's window centre
    centre = np.maximum(Envelope.time(np.arange(env.k)), 0.0)
    w = np.minimum((centre * SAMPLE_RATE / WINDOW).astype(int), max(voiced_win.size - 1, 0))
    voiced = voiced_win[w] if voiced_win.size else np.zeros(env.k, bool)
    whole = _kind_of(env.level_db, env.flatness, voiced, periodicity(env.onset)[1])
    per_s = SAMPLE_RATE // HOP
    blocks = max(1, math.ceil(duration / _KIND_BLOCK_S - 1e-9))
    kinds = []
    for b in range(blocks):
        a = max(int((b * _KIND_BLOCK_S - _KIND_CONTEXT_S) * per_s), 0)
        z = min(int(((b + 1) * _KIND_BLOCK_S + _KIND_CONTEXT_S) * per_s), env.k)
        kinds.append(
            _kind_of(
                env.level_db[a:z], env.flatness[a:z], voiced[a:z], periodicity(env.onset[a:z])[1]
            )
        )
    for i in range(1, len(kinds) - 1):  # a lone block between two equal neighbours
        if kinds[i - 1] == kinds[i + 1] != kinds[i]:
            kinds[i] = kinds[i - 1]
    segments: list[dict] = []
    for b, kd in enumerate(kinds):
        name = KIND_NAMES[kd].lower()
        end = _ms(min((b + 1) * _KIND_BLOCK_S, duration))
        if segments and segments[-1]["kind"] == name:
            segments[-1]["end"] = end
        else:
            segments.append({"start": _ms(b * _KIND_BLOCK_S), "end": end, "kind": name})
    return {"kind": KIND_NAMES[whole].lower(), "segments": segments}


# --- the whole analysis --------------------------------------------------------------------
def analyze(samples, fps: float = 25.0, transcript: str | None = None, parts=ALL) -> dict:
    x, fps, transcript, want = _check(samples, fps, transcript, parts)
    duration = x.size / SAMPLE_RATE
    result: dict = {"duration": _ms(duration)}
    need_vad = bool(want & {"kind", "voice", "phones"})
    # What needs no voice decision runs beside the VAD (onnxruntime, one thread: a core idles)
    side: dict = {}

    def signal_parts() -> None:
        try:
            side["env"] = Envelope(x) if want & {"kind", "beats"} else None
            if "jaw" in want:
                motion = MouthMotion(SAMPLE_RATE, fps)
                side["jaw"] = np.concatenate((motion.push(x), motion.finish()))
            if "beats" in want and side["env"] is not None:
                side["beats"] = beat_analysis(side["env"])
        except BaseException as exc:  # raised again in this thread, below
            side["error"] = exc

    worker = threading.Thread(target=signal_parts, name="analysis-signal")
    worker.start()
    probs = voice_probs(x) if need_vad else np.zeros(0)
    voiced_win = voiced_windows(probs)
    voiced = _ranges(voiced_win, WINDOW / SAMPLE_RATE, duration)
    threads: list[threading.Thread] = []
    segments: list[tuple[str, float, float]] = []
    aligned = False
    if "phones" in want:  # decoded by other threads while this one does the rest
        spans = _decode_spans(voiced, probs, duration)
        segments, aligned, threads = decode_ranges(x, spans, transcript)
    worker.join()
    if "error" in side:
        raise side["error"]
    env = side["env"]
    if "kind" in want and env is not None:
        result.update(kind_analysis(env, voiced_win, duration))
    if "voice" in want:
        result["voiced"] = [[_ms(a), _ms(b)] for a, b in voiced]
    if "jaw" in want:
        values = side["jaw"]
        assert values.size == frame_count(x.size, fps)
        result["jaw"] = {"rate": fps, "values": np.round(values.astype(np.float64), 3).tolist()}
    if "beats" in want and env is not None:
        result.update(side["beats"])
    if "phones" in want:
        for t in threads:
            t.join()
        segments.sort(key=lambda s: s[1])
        result["aligned"] = aligned
        result["phones"] = [
            {"phone": p, "start": _ms(s), "end": _ms(e)} for p, s, e in segments if p != "SIL"
        ]
        result["visemes"] = viseme_spans(segments, duration)
    return result


def _read_audio(path: str) -> np.ndarray:
    if path.endswith(".f32"):
        return np.fromfile(path, np.float32)
    import wave

    with wave.open(path) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit WAV (or raw float32 .f32)")
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(description="time analyze() on an audio file")
    ap.add_argument("path")
    ap.add_argument("--parts", default="")
    ap.add_argument("--transcript", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    opts = ap.parse_args()
    audio = _read_audio(opts.path)
    seconds = audio.size / SAMPLE_RATE
    analyze(audio[:SAMPLE_RATE], parts=parse_parts(opts.parts))  # warm up (sessions, decoders)
    runs = [("all", parse_parts(opts.parts))]
    if not opts.parts:
        runs += [(p, (p,)) for p in ALL]
    summary = None
    for label, asked in runs:
        best = math.inf
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            res = analyze(audio, transcript=opts.transcript, parts=asked)
            best = min(best, time.perf_counter() - t0)
        summary = summary or res
        print(
            f"{label:7s} {seconds:.1f} s of audio in {best:.3f} s: {seconds / best:.0f}x real time"
        )
    print(
        {
            k: (v if not isinstance(v, list) else f"[{len(v)}]")
            for k, v in summary.items()
            if k != "jaw"
        }
    )
