"""Triton python-backend model: lipsync on a speaker video.

Tensors (config.pbtxt is the source of truth):
  FPS          fp32  [1]             first request: frame rate
  FACE_INDEX   int32 [1]             first request, optional: n-th largest face
  FACE_BOX     fp32  [4]             first request, optional: face overlapping this box
  FRAMES_IN    uint8 [n, H, W, 3]    next frames in output order
  SOURCE_INDEX int64 [n]             their indices in the source video
  AUDIO        fp32  [k]             next mono 16 kHz samples
  FRAMES       uint8 [m, H, W, 3]    response: re-animated frames, in order
  FIRST_FRAME  int64 [1]             response: index of FRAMES[0]
  MOUTH_OPEN   fp32  [m]             response: mouth opening asked for by the speech
  FACE_FOUND   uint8 [m]             response: 0 where no face was found (frame unchanged)
Errors: "[INVALID_ARGUMENT] ..." tagged messages, like talking_avatar.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils
from face_detection import FaceAnalyzer
from face_track import FaceTracker
from mouth_motion import MouthMotion
from video_mouth import reanimate

SAMPLE_RATE = 16000
log = logging.getLogger("lipsync")


class InvalidRequest(ValueError):
    """Reported as [INVALID_ARGUMENT]."""


@dataclass
class Session:
    tracker: FaceTracker
    motion: MouthMotion
    frames: deque = field(default_factory=deque)  # (source index, frame) waiting for audio
    openness: deque = field(default_factory=deque)
    next_frame: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _input(request, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self._max_frames = int(config["parameters"]["max_frames_per_response"]["string_value"])
        idle = int(config["sequence_batching"]["max_sequence_idle_microseconds"]) / 1e6
        self._idle_seconds = idle
        self._analyzer = FaceAnalyzer()
        self._sessions: dict[int, Session] = {}

    def execute(self, requests: list) -> None:
        now = time.monotonic()
        for corrid in [
            c for c, s in self._sessions.items() if now - s.last_used > self._idle_seconds
        ]:
            del self._sessions[corrid]
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
            except Exception as exc:
                log.exception("sequence %d failed", corrid)
                self._sessions.pop(corrid, None)
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INTERNAL] lipsync failed: {exc}")
                    )
                )
            finally:
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def _handle(self, request, sender, corrid: int) -> None:
        if bool(_input(request, "START").ravel()[0]):
            # One sequence slot per instance (direct batching, max_batch_size 0): a new
            # sequence means any other one here is over (see talking_avatar/1/model.py).
            self._sessions.clear()
            self._sessions[corrid] = self._new_session(request)
        session = self._sessions.get(corrid)
        if session is None:
            raise InvalidRequest(f"sequence {corrid} is unknown: start it with FPS first")
        session.last_used = time.monotonic()
        end = bool(_input(request, "END").ravel()[0])

        frames = _input(request, "FRAMES_IN")
        indices = _input(request, "SOURCE_INDEX")
        if frames is not None:
            if indices is None or len(indices) != len(frames):
                raise InvalidRequest("SOURCE_INDEX must give one index per frame of FRAMES_IN")
            session.frames.extend(zip(indices.tolist(), frames, strict=True))
        audio = _input(request, "AUDIO").astype(np.float32, copy=False).ravel()
        if not np.all(np.isfinite(audio)):
            raise InvalidRequest("AUDIO contains NaN or infinite samples")
        session.openness.extend(session.motion.push(np.clip(audio, -1.0, 1.0)).tolist())
        if end:
            session.openness.extend(session.motion.finish().tolist())
            if len(session.frames) != len(session.openness):
                raise InvalidRequest(
                    f"got {len(session.frames)} frames for {len(session.openness)} frames of "
                    "audio: send exactly one frame per audio frame"
                )
        self._render(session, sender)
        if end:
            self._sessions.pop(corrid, None)

    def _render(self, session: Session, sender) -> None:
        while session.frames and session.openness:
            if sender.is_cancelled():
                session.frames.clear()
                return
            n = min(self._max_frames, len(session.frames), len(session.openness))
            out, opens, found = [], [], []
            for _ in range(n):
                index, frame = session.frames.popleft()
                openness = session.openness.popleft()
                marks = session.tracker.landmarks(int(index), frame)
                out.append(frame if marks is None else reanimate(frame, marks, openness))
                opens.append(openness)
                found.append(marks is not None)
            sender.send(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("FRAMES", np.stack(out)),
                        pb_utils.Tensor("FIRST_FRAME", np.array([session.next_frame], np.int64)),
                        pb_utils.Tensor("MOUTH_OPEN", np.array(opens, np.float32)),
                        pb_utils.Tensor("FACE_FOUND", np.array(found, np.uint8)),
                    ]
                )
            )
            session.next_frame += n

    def _new_session(self, request) -> Session:
        fps_in = _input(request, "FPS")
        if fps_in is None:
            raise InvalidRequest("the first request needs FPS")
        fps = float(fps_in.ravel()[0])
        if not 1.0 <= fps <= 60.0:
            raise InvalidRequest(f"FPS must be within 1..60, got {fps:g}")
        index = _input(request, "FACE_INDEX")
        box = _input(request, "FACE_BOX")
        tracker = FaceTracker(
            self._analyzer,
            face_index=int(index.ravel()[0]) if index is not None else 0,
            face_box=tuple(float(v) for v in box.ravel()[:4]) if box is not None else None,
        )
        return Session(tracker=tracker, motion=MouthMotion(sample_rate=SAMPLE_RATE, fps=fps))
