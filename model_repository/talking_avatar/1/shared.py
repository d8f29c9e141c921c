"""Code the talking_avatar and lipsync models share on purpose (numpy, no Triton needed).

Shared by: talking_avatar (this file, talking_avatar/1/shared.py), lipsync
(lipsync/1/shared.py is a relative symlink to it, as lipsync/1/mouth_motion.py is) and
audio_analysis (audio_analysis/1/shared.py, the same). A change here changes all three
models: their tests (tests/unit, tests/models) and the integration tests cover it.

* the audio both models take (``SAMPLE_RATE``) and the frame rates they render (``MAX_FPS``);
* dlib's 68 face landmarks by name (both warp the mouth and jaw from them);
* the warp geometry both mouth warps use: the face's axes, the thin-plate spline;
* the request loop of a decoupled, stateful Triton model (``SequenceModel``): one sequence
  per instance, its first request starts it, errors go back tagged "[INVALID_ARGUMENT] ..."
  or "[INTERNAL] ...", every request is closed with the FINAL flag.
"""

from __future__ import annotations

import logging
import math
import time
from fractions import Fraction

import numpy as np

try:  # inside Triton's python backend stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # the algorithm modules and their tests use the rest without Triton
    pb_utils = None

#: the audio every request carries: mono float32 in [-1, 1] at this rate (config.pbtxt);
#: the a2v server resamples to it (a2v_server.catalog.MODEL_SAMPLE_RATE, a test checks)
SAMPLE_RATE = 16000
#: frame rates the models render: 1..MAX_FPS
MAX_FPS = 60.0


def frame_count(samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames for ``samples`` of audio at ``fps``: the nearest whole number, halves
    rounded up, computed exactly. The a2v server counts with the same rule
    (a2v_server.catalog.frame_count, on the float32 FPS it sends; a test compares them)."""
    exact = Fraction(int(samples)) * Fraction(float(fps)) / int(sample_rate)
    return math.floor(exact + Fraction(1, 2))


# --- dlib's 68 face landmarks (the iBUG 300-W scheme), by index ------------------------------
# "right" and "left" are the subject's: the right eye is on the image's left.
N_LANDMARKS = 68
JAW = range(0, 17)  # along the jaw line from the right ear (0) to the left ear (16)
CHIN = 8  # the middle of JAW
BROWS = range(17, 27)  # right brow 17-21, then left brow 22-26, from the image's left
NOSE_BRIDGE = range(27, 31)  # from between the eyes (27) down to the tip (30)
NOSE_TIP = 30
NOSE_BASE = range(31, 36)  # under the nose, from the right wing (31) to the left wing (35)
NOSE_WINGS = [31, 35]
NOSE_BOTTOM = 33  # below the tip, where the philtrum starts
NOSE = range(27, 36)
RIGHT_EYE = range(36, 42)  # outer corner, 2 upper lid, inner corner, 2 lower lid
LEFT_EYE = range(42, 48)  # inner corner, 2 upper lid, outer corner, 2 lower lid
EYES = range(36, 48)
UPPER_LIDS = [37, 38, 43, 44]
MOUTH = range(48, 68)
OUTER_LIPS = range(48, 60)  # the lips' outer edge, clockwise from the right corner
MOUTH_RIGHT, MOUTH_LEFT = 48, 54  # the mouth's corners
UPPER_LIP = range(49, 54)  # the upper lip's outer edge between the corners, 51 in the middle
LOWER_LIP = range(55, 60)  # the lower lip's outer edge, from the left: 57 in the middle
INNER_LIPS = range(60, 68)  # the lips' inner edge, clockwise from the right corner
INNER_RIGHT, INNER_LEFT = 60, 64  # the inner edge's corners
INNER_UPPER_LIP = range(61, 64)  # the upper lip's inner edge, 62 in the middle
INNER_LOWER_LIP = range(65, 68)  # the lower lip's inner edge, from the left: 66 in the middle
UPPER_LIP_MIDDLE, LOWER_LIP_MIDDLE = 51, 57
INNER_UPPER_MIDDLE, INNER_LOWER_MIDDLE = 62, 66


# --- warp geometry ----------------------------------------------------------------------------
def face_axes(lm: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit "down" vector (eyes -> mouth, so tilted heads work) and the mouth width in pixels
    (at least 4) of landmarks ``lm`` (68, 2)."""
    down = lm[MOUTH].mean(0) - lm[EYES].mean(0)
    down /= max(float(np.linalg.norm(down)), 1e-6)
    return down, max(float(np.linalg.norm(lm[MOUTH_LEFT] - lm[MOUTH_RIGHT])), 4.0)


def tps_kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Thin-plate spline kernel (m, n) between points ``p`` (m, 2) and ``q`` (n, 2)."""
    r2 = np.maximum((p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2.0 * p @ q.T, 0.0)
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-12))


def tps_weights(points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Thin-plate spline coefficients (n + 3, 2) interpolating ``values`` at ``points``."""
    n = len(points)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = tps_kernel(points, points) + 1e-6 * np.eye(n)  # near-duplicate points are fine
    a[:n, n] = 1.0
    a[:n, n + 1 :] = points
    a[n, :n] = 1.0
    a[n + 1 :, :n] = points.T
    b = np.zeros((n + 3, 2))
    b[:n] = values
    return np.linalg.solve(a, b)


# --- the request loop -------------------------------------------------------------------------
class InvalidRequest(ValueError):
    """A request the caller must fix; reported as [INVALID_ARGUMENT]."""


def input_array(request, name: str) -> np.ndarray | None:
    """The input tensor ``name`` of ``request`` as numpy, None when it was not sent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def input_flag(request, name: str) -> bool:
    return bool(input_array(request, name).ravel()[0])


def audio_samples(request) -> np.ndarray:
    """The request's AUDIO, checked and clipped to [-1, 1] (float32, may be empty)."""
    audio = input_array(request, "AUDIO").astype(np.float32, copy=False).ravel()
    if not np.all(np.isfinite(audio)):
        raise InvalidRequest("AUDIO contains NaN or infinite samples")
    return np.clip(audio, -1.0, 1.0)


def frame_rate(fps_in: np.ndarray) -> float:
    """The FPS input, checked."""
    fps = float(fps_in.ravel()[0])
    if not 1.0 <= fps <= MAX_FPS:
        raise InvalidRequest(f"FPS must be within 1..{MAX_FPS:g}, got {fps:g}")
    return fps


class SequenceModel:
    """``execute`` of a decoupled model with direct sequence batching (max_batch_size 0).

    A subclass calls ``_start_sequences(config)`` in ``initialize`` and implements
    ``_new_session(request)`` (the state of one sequence: an object with a ``last_used``
    monotonic time, built from its first request) and ``_handle(request, sender, corrid)``,
    which gets the session from ``_session(request, corrid)``, sends the responses and
    forgets the session at END. Raising ``InvalidRequest`` sends "[INVALID_ARGUMENT] ...",
    any other exception "[INTERNAL] <FAILURE>: ..."; either ends the sequence. Every request
    is closed with TRITONSERVER_RESPONSE_COMPLETE_FINAL, after a cancel or an error too.
    """

    #: what failed, in the [INTERNAL] message
    FAILURE = "rendering failed"
    #: the input the unknown-sequence message tells the caller to start with
    FIRST_INPUT = ""
    log = logging.getLogger(__name__)

    def _start_sequences(self, config: dict) -> None:
        idle_us = int(config["sequence_batching"]["max_sequence_idle_microseconds"])
        self._idle_seconds = idle_us / 1e6
        self._sessions: dict[int, object] = {}

    def execute(self, requests: list) -> None:
        self._drop_idle_sessions()
        for request in requests:
            sender = request.get_response_sender()
            corrid = int(input_array(request, "CORRID").ravel()[0])
            try:
                self._handle(request, sender, corrid)
            except InvalidRequest as exc:
                self._sessions.pop(corrid, None)
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INVALID_ARGUMENT] {exc}")
                    )
                )
            except Exception as exc:  # a bug: keep the instance alive, fail this sequence
                self.log.exception("sequence %d failed", corrid)
                self._sessions.pop(corrid, None)
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INTERNAL] {self.FAILURE}: {exc}")
                    )
                )
            finally:
                # Always close the request, after a cancel or an error too.
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def _session(self, request, corrid: int):
        """The session of ``corrid``; a new one when the request has START."""
        if input_flag(request, "START"):
            # Direct sequence batching with max_batch_size 0 gives each instance one sequence
            # slot: a new sequence here means any other one is over (a caller that went away
            # without END: Triton released it but never tells the model).
            self._sessions.clear()
            self._sessions[corrid] = self._new_session(request)
        session = self._sessions.get(corrid)
        if session is None:
            raise InvalidRequest(
                f"sequence {corrid} is unknown: start it with {self.FIRST_INPUT} first"
            )
        session.last_used = time.monotonic()
        return session

    def _drop_idle_sessions(self) -> None:
        """Forget sequences whose client vanished without sending END (Triton also frees them)."""
        now = time.monotonic()
        for corrid in [
            c for c, s in self._sessions.items() if now - s.last_used > self._idle_seconds
        ]:
            self.log.warning("dropping idle sequence %d", corrid)
            del self._sessions[corrid]

    def _new_session(self, request):
        raise NotImplementedError

    def _handle(self, request, sender, corrid: int) -> None:
        raise NotImplementedError
