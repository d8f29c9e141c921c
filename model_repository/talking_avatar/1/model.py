"""Triton python-backend model: a talking avatar rendered from speech.

Decoupled and stateful (see config.pbtxt). Tensors:
  PORTRAIT    uint8 [H, W, 3]   first request of a sequence: the framed RGB portrait
  LANDMARKS   fp32  [68, 2]     first request: its face landmarks (dlib order)
  FPS         fp32  [1]         first request: output frame rate
  AUDIO       fp32  [n]         every request: next mono 16 kHz samples (n may be 0)
  FRAMES      uint8 [k, H, W, 3] response: rendered frames
  FIRST_FRAME int64 [1]          response: index of FRAMES[0] in the clip
  MOUTH_OPEN  fp32  [k]          response: mouth opening per frame
  SEED, EXPRESSION_SCALE, HEAD_MOTION_SCALE, BLINK_RATE, TRANSCRIPT: optional, first request
  VISEME      int32 [k]          response: mouth shape per frame (visemes.py numbering)
  HEAD_POSE   fp32  [k, 3]       response: yaw, pitch, roll degrees per frame
  BLINK       fp32  [k]          response: eyelid closure 0..1 per frame
  AUDIO_KIND  int32 [1]          response: 1 speech, 2 music, 3 other (audio so far)

Frames come back LOOKAHEAD (animator.LOOKAHEAD_S = 0.24 s) of audio after their own time.

Errors are sent as error responses whose message starts with a status tag such as
"[INVALID_ARGUMENT]"; the a2v server maps the tag to its gRPC status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils
from animator import LOOKAHEAD_S, Animator
from face_motion import FaceMotion
from mouth_render import MouthRenderer

SAMPLE_RATE = 16000
MAX_FPS = 60.0
#: portraits whose warp state an instance keeps (a few MB each at 512x512)
PORTRAIT_CACHE = 3

log = logging.getLogger("talking_avatar")


class InvalidRequest(ValueError):
    """A request the caller must fix; reported as [INVALID_ARGUMENT]."""


@dataclass
class Session:
    """State of one sequence (one generation)."""

    renderer: MouthRenderer
    face: FaceMotion
    animator: Animator
    #: x0, y0, x1, y1: the only pixels any frame changes; responses carry just this region
    region: tuple[int, int, int, int] = (0, 0, 0, 0)
    next_frame: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _input(request, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def _scalar(request, name: str, lo: float, hi: float, default: float) -> float:
    value = _input(request, name)
    if value is None or value.size == 0:
        return default
    v = float(value.ravel()[0])
    if not (np.isfinite(v) and lo <= v <= hi):
        raise InvalidRequest(f"{name} must be a finite number within {lo:g}..{hi:g}, got {v:g}")
    return v


def _liveliness(request) -> dict:
    seed = _input(request, "SEED")
    return dict(
        seed=int(seed.ravel()[0]) if seed is not None and seed.size else 0,
        expression_scale=_scalar(request, "EXPRESSION_SCALE", 0.0, 2.0, 1.0),
        head_motion_scale=_scalar(request, "HEAD_MOTION_SCALE", 0.0, 2.0, 1.0),
        blink_rate=_scalar(request, "BLINK_RATE", 0.0, 60.0, 15.0),
    )


def _transcript(request) -> str | None:
    value = _input(request, "TRANSCRIPT")
    if value is None or value.size == 0:
        return None
    raw = value.ravel()[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if len(text) > 100_000:
        raise InvalidRequest("TRANSCRIPT is longer than 100000 characters")
    return text.strip() or None


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self._max_frames = int(params["max_frames_per_response"]["string_value"])
        #: per-portrait warp state (renderer, face motion), by portrait and landmarks: both are
        #: read-only after construction, so a portrait rendered again (a canvas re-rendering
        #: one avatar with new audio) skips their setup (~20 ms CPU at 512x512, 120 ms in the
        #: stub before the spline kernels of the static anchors were shared).
        self._portraits: OrderedDict[bytes, tuple[MouthRenderer, FaceMotion]] = OrderedDict()
        declared = float(params["lookahead_seconds"]["string_value"])
        if abs(declared - LOOKAHEAD_S) > 1e-6:  # the config is what callers are told
            raise pb_utils.TritonModelException(
                f"config.pbtxt declares lookahead_seconds={declared}, the code uses {LOOKAHEAD_S}"
            )
        idle_us = int(config["sequence_batching"]["max_sequence_idle_microseconds"])
        self._idle_seconds = idle_us / 1e6
        self._sessions: dict[int, Session] = {}
        # Pay the one-time initialisation now, not in the first sequence this instance serves:
        # the first Animator in a process costs ~70 ms more than later ones (PocketSphinx
        # reading its acoustic model, the VAD's ONNX session). Measured in the first chunk of
        # a fresh instance's first upload: ~30 ms earlier (noisy). The rest of a first sight
        # (~60 ms, see README Benchmarks) is not in this code: a full synthetic sequence
        # (renderer, OpenCV, voiced audio) at load did not shorten it further.
        warm = Animator(fps=25.0)
        warm.push(np.zeros(SAMPLE_RATE, np.float32))
        warm.finish()

    def execute(self, requests: list) -> None:
        self._drop_idle_sessions()
        for request in requests:
            sender = request.get_response_sender()
            corrid = int(_input(request, "CORRID").ravel()[0])
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
                log.exception("sequence %d failed", corrid)
                self._sessions.pop(corrid, None)
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INTERNAL] rendering failed: {exc}")
                    )
                )
            finally:
                # Always close the request, after a cancel or an error too.
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self) -> None:
        self._sessions.clear()
        self._portraits.clear()

    # ------------------------------------------------------------------------------------------
    def _handle(self, request, sender, corrid: int) -> None:
        start = bool(_input(request, "START").ravel()[0])
        end = bool(_input(request, "END").ravel()[0])
        if start:
            # Direct sequence batching with max_batch_size 0 gives each instance one sequence
            # slot: a new sequence here means any other one is over (a caller that went away
            # without END: Triton released it but never tells the model).
            self._sessions.clear()
            self._sessions[corrid] = self._new_session(request)
        session = self._sessions.get(corrid)
        if session is None:
            raise InvalidRequest(f"sequence {corrid} is unknown: start it with PORTRAIT first")
        session.last_used = time.monotonic()

        audio = _input(request, "AUDIO").astype(np.float32, copy=False).ravel()
        if not np.all(np.isfinite(audio)):
            raise InvalidRequest("AUDIO contains NaN or infinite samples")
        frames = session.animator.push(np.clip(audio, -1.0, 1.0))
        if end:
            frames += session.animator.finish()

        for i in range(0, len(frames), self._max_frames):
            if sender.is_cancelled():
                self._sessions.pop(corrid, None)
                return
            batch = frames[i : i + self._max_frames]
            x0, y0, x1, y1 = session.region
            images = np.stack(
                [
                    session.face.apply(
                        session.renderer.render(f.openness, f.shapes), f.blink, f.brow, f.pose
                    )
                    for f in batch
                ]
            )[:, y0:y1, x0:x1]
            sender.send(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("FRAMES", np.ascontiguousarray(images)),
                        pb_utils.Tensor("REGION", np.array(session.region, np.int32)),
                        pb_utils.Tensor(
                            "FIRST_FRAME", np.array([session.next_frame], dtype=np.int64)
                        ),
                        pb_utils.Tensor(
                            "MOUTH_OPEN", np.array([f.openness for f in batch], np.float32)
                        ),
                        pb_utils.Tensor("VISEME", np.array([f.viseme for f in batch], np.int32)),
                        pb_utils.Tensor(
                            "HEAD_POSE", np.stack([f.pose for f in batch]).astype(np.float32)
                        ),
                        pb_utils.Tensor("BLINK", np.array([f.blink for f in batch], np.float32)),
                        pb_utils.Tensor("AUDIO_KIND", np.array([batch[-1].kind], np.int32)),
                    ]
                )
            )
            session.next_frame += len(batch)
        if end:
            self._sessions.pop(corrid, None)

    def _new_session(self, request) -> Session:
        portrait = _input(request, "PORTRAIT")
        landmarks = _input(request, "LANDMARKS")
        fps_in = _input(request, "FPS")
        if portrait is None or landmarks is None or fps_in is None:
            raise InvalidRequest("the first request needs PORTRAIT, LANDMARKS and FPS")
        if portrait.ndim != 3 or portrait.shape[2] != 3 or min(portrait.shape[:2]) < 32:
            raise InvalidRequest(f"PORTRAIT must be [H, W, 3], got {list(portrait.shape)}")
        fps = float(fps_in.ravel()[0])
        if not 1.0 <= fps <= MAX_FPS:
            raise InvalidRequest(f"FPS must be within 1..{MAX_FPS:g}, got {fps:g}")
        landmarks = landmarks.reshape(68, 2).astype(np.float32)
        if not np.all(np.isfinite(landmarks)):
            raise InvalidRequest("LANDMARKS contain NaN or infinite values")
        renderer, face = self._portrait_state(np.ascontiguousarray(portrait), landmarks)
        animator = Animator(fps=fps, transcript=_transcript(request), **_liveliness(request))
        boxes = (renderer.roi, face.box)
        region = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        return Session(renderer=renderer, face=face, animator=animator, region=region)

    def _portrait_state(
        self, portrait: np.ndarray, landmarks: np.ndarray
    ) -> tuple[MouthRenderer, FaceMotion]:
        digest = hashlib.blake2b(digest_size=16)
        for part in (np.array(portrait.shape, np.int64), portrait, landmarks):
            digest.update(np.ascontiguousarray(part).tobytes())
        key = digest.digest()
        state = self._portraits.pop(key, None)
        if state is None:
            state = (MouthRenderer(portrait, landmarks), FaceMotion(portrait.shape, landmarks))
        self._portraits[key] = state  # most recent last
        while len(self._portraits) > PORTRAIT_CACHE:
            self._portraits.popitem(last=False)
        return state

    def _drop_idle_sessions(self) -> None:
        """Forget sequences whose client vanished without sending END (Triton also frees them)."""
        now = time.monotonic()
        for corrid in [
            c for c, s in self._sessions.items() if now - s.last_used > self._idle_seconds
        ]:
            log.warning("dropping idle sequence %d", corrid)
            del self._sessions[corrid]
