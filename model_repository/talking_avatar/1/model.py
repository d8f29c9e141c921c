"""Triton python-backend model: a talking avatar rendered from speech.

Decoupled and stateful (see config.pbtxt). Tensors:
  PORTRAIT    uint8 [H, W, 3]   first request of a sequence: the framed RGB portrait
  LANDMARKS   fp32  [68, 2]     first request: its face landmarks (dlib order)
  MESH        fp32  [478, 3]    optional, first request: MediaPipe's face mesh (x, y pixels, z
                                depth on the x scale): blinks on the dense eye contours and the
                                iris, head pose as 3D rotations; without it the 68 points serve
  FPS         fp32  [1]         first request: output frame rate
  AUDIO       fp32  [n]         every request: next mono 16 kHz samples (n may be 0)
  FRAMES      uint8 [k, H, W, 3] response: rendered frames
  FIRST_FRAME int64 [1]          response: index of FRAMES[0] in the clip
  MOUTH_OPEN  fp32  [k]          response: mouth opening per frame
  SEED, EXPRESSION_SCALE, HEAD_MOTION_SCALE, BLINK_RATE, TRANSCRIPT: optional, first request
  START_FRAME int64 [1]          optional, first request (failover): the output starts at this
                                frame; the audio still starts at the clip's start
  VISEME      int32 [k]          response: mouth shape per frame (visemes.py numbering)
  HEAD_POSE   fp32  [k, 3]       response: yaw, pitch, roll degrees per frame
  BLINK       fp32  [k]          response: eyelid closure 0..1 per frame
  AUDIO_KIND  int32 [1]          response: 1 speech, 2 music, 3 other (audio so far)

Frames come back LOOKAHEAD (animator.LOOKAHEAD_S = 0.24 s) of audio after their own time.

Errors are sent as error responses whose message starts with a status tag such as
"[INVALID_ARGUMENT]"; the a2v server maps the tag to its gRPC status. The request loop (one
sequence per instance, error tags, the FINAL flag on every request) is shared.SequenceModel,
which the lipsync model runs too.
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
from face_motion import N_MESH, FaceMotion
from mouth_render import MouthRenderer
from shared import (
    N_LANDMARKS,
    SAMPLE_RATE,
    InvalidRequest,
    SequenceModel,
    audio_samples,
    frame_rate,
    input_array,
    input_flag,
)

#: portraits whose warp state an instance keeps (a few MB each at 512x512)
PORTRAIT_CACHE = 3
#: a sequence's first frames go out one per response (later ones: max_frames_per_response).
#: The encoder's first fragment holds two frames, and the server encodes a response's frames
#: before it sends what they made: with five to a response the client's first chunk waited for
#: three frames more to be rendered, sent and encoded (at 1080p ~25 + 35 ms each on the bench
#: machine), and one at a time the server encodes the first frame while the second renders
FIRST_FRAMES = 2


@dataclass
class Session:
    """State of one sequence (one generation)."""

    renderer: MouthRenderer
    face: FaceMotion
    animator: Animator
    #: x0, y0, x1, y1: the only pixels any frame changes; responses carry just this region
    region: tuple[int, int, int, int] = (0, 0, 0, 0)
    next_frame: int = 0
    #: frames before START_FRAME: animated (the state), not rendered
    skip: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _scalar(request, name: str, lo: float, hi: float, default: float) -> float:
    value = input_array(request, name)
    if value is None or value.size == 0:
        return default
    v = float(value.ravel()[0])
    if not (np.isfinite(v) and lo <= v <= hi):
        raise InvalidRequest(f"{name} must be a finite number within {lo:g}..{hi:g}, got {v:g}")
    return v


def _liveliness(request) -> dict:
    seed = input_array(request, "SEED")
    return dict(
        seed=int(seed.ravel()[0]) if seed is not None and seed.size else 0,
        expression_scale=_scalar(request, "EXPRESSION_SCALE", 0.0, 2.0, 1.0),
        head_motion_scale=_scalar(request, "HEAD_MOTION_SCALE", 0.0, 2.0, 1.0),
        blink_rate=_scalar(request, "BLINK_RATE", 0.0, 60.0, 15.0),
    )


def _transcript(request) -> str | None:
    value = input_array(request, "TRANSCRIPT")
    if value is None or value.size == 0:
        return None
    raw = value.ravel()[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if len(text) > 100_000:
        raise InvalidRequest("TRANSCRIPT is longer than 100000 characters")
    return text.strip() or None


class TritonPythonModel(SequenceModel):
    FAILURE = "rendering failed"
    FIRST_INPUT = "PORTRAIT"
    log = logging.getLogger("talking_avatar")

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self._max_frames = int(params["max_frames_per_response"]["string_value"])
        #: per-portrait warp state (the portrait, its renderer and face motion), by size,
        #: landmarks and mesh, the pixels compared on a hit: renderer and face motion depend on
        #: nothing else (the renderer makes its fields when a frame first needs them, the same
        #: numbers whenever), so a portrait rendered again (a canvas re-rendering one avatar
        #: with new audio) skips their setup and keeps the fields its last sequence made.
        self._portraits: OrderedDict[bytes, tuple[np.ndarray, MouthRenderer, FaceMotion]] = (
            OrderedDict()
        )
        declared = float(params["lookahead_seconds"]["string_value"])
        if abs(declared - LOOKAHEAD_S) > 1e-6:  # the config is what callers are told
            raise pb_utils.TritonModelException(
                f"config.pbtxt declares lookahead_seconds={declared}, the code uses {LOOKAHEAD_S}"
            )
        self._start_sequences(config)
        # Pay the one-time initialisation now, not in the first sequence this instance serves:
        # the first Animator in a process costs ~70 ms more than later ones (PocketSphinx
        # reading its acoustic model, the VAD's ONNX session). Measured in the first chunk of
        # a fresh instance's first upload: ~30 ms earlier (noisy). The rest of a first sight
        # (~60 ms, see README Benchmarks) is not in this code: a full synthetic sequence
        # (renderer, OpenCV, voiced audio) at load did not shorten it further.
        warm = Animator(fps=25.0)
        warm.push(np.zeros(SAMPLE_RATE, np.float32))
        warm.finish()

    def finalize(self) -> None:
        self._sessions.clear()
        self._portraits.clear()

    # ------------------------------------------------------------------------------------------
    def _handle(self, request, sender, corrid: int) -> None:
        session: Session = self._session(request, corrid)
        end = input_flag(request, "END")
        frames = session.animator.push(audio_samples(request))
        if end:
            frames += session.animator.finish()
        if session.skip:
            skipped = min(session.skip, len(frames))
            frames, session.skip = frames[skipped:], session.skip - skipped

        while frames:
            if sender.is_cancelled():
                self._sessions.pop(corrid, None)
                return
            most = self._max_frames if session.next_frame >= FIRST_FRAMES else 1
            batch, frames = frames[:most], frames[most:]
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
        portrait = input_array(request, "PORTRAIT")
        landmarks = input_array(request, "LANDMARKS")
        fps_in = input_array(request, "FPS")
        if portrait is None or landmarks is None or fps_in is None:
            raise InvalidRequest("the first request needs PORTRAIT, LANDMARKS and FPS")
        if portrait.ndim != 3 or portrait.shape[2] != 3 or min(portrait.shape[:2]) < 32:
            raise InvalidRequest(f"PORTRAIT must be [H, W, 3], got {list(portrait.shape)}")
        fps = frame_rate(fps_in)
        landmarks = landmarks.reshape(N_LANDMARKS, 2).astype(np.float32)
        if not np.all(np.isfinite(landmarks)):
            raise InvalidRequest("LANDMARKS contain NaN or infinite values")
        mesh = input_array(request, "MESH")
        if mesh is not None:
            if mesh.size != N_MESH * 3:
                raise InvalidRequest(f"MESH must be [{N_MESH}, 3], got {list(mesh.shape)}")
            mesh = mesh.reshape(N_MESH, 3).astype(np.float32)
            if not np.all(np.isfinite(mesh)):
                raise InvalidRequest("MESH contains NaN or infinite values")
        renderer, face = self._portrait_state(np.ascontiguousarray(portrait), landmarks, mesh)
        animator = Animator(fps=fps, transcript=_transcript(request), **_liveliness(request))
        boxes = (renderer.roi, face.box)
        region = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        start = input_array(request, "START_FRAME")
        skip = max(0, int(start.ravel()[0])) if start is not None else 0
        return Session(
            renderer=renderer,
            face=face,
            animator=animator,
            region=region,
            next_frame=skip,
            skip=skip,
        )

    def _portrait_state(
        self, portrait: np.ndarray, landmarks: np.ndarray, mesh: np.ndarray | None
    ) -> tuple[MouthRenderer, FaceMotion]:
        # Keyed by the size, landmarks and mesh, and a hit confirmed by comparing the pixels:
        # hashing the pixels took ~9 ms per new 1080p portrait, comparing them takes ~2 ms
        # and only when the rest matches.
        digest = hashlib.blake2b(digest_size=16)
        parts = [np.array(portrait.shape, np.int64), landmarks]
        if mesh is not None:
            parts.append(mesh)
        for part in parts:
            digest.update(np.ascontiguousarray(part).tobytes())
        key = digest.digest()
        state = self._portraits.pop(key, None)
        if state is None or not np.array_equal(state[0], portrait):
            state = (
                portrait,
                MouthRenderer(portrait, landmarks, mesh),
                FaceMotion(portrait.shape, landmarks, mesh),
            )
        self._portraits[key] = state  # most recent last
        while len(self._portraits) > PORTRAIT_CACHE:
            self._portraits.popitem(last=False)
        return state[1], state[2]
