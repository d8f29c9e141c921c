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
  MOUTH_SOURCE uint8 [m]             response: how each frame's mouth was made: 0 passed
                                     through, 1 warp only, 2 a mouth retrieved from the
                                     video's own frames (source_mouths.py)
Errors: "[INVALID_ARGUMENT] ..." tagged messages, like talking_avatar: both run the request
loop of shared.SequenceModel (shared.py is talking_avatar/1/shared.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils
from face_mesh import FaceAnalyzer, MeshFollower
from face_track import FaceTracker
from mouth_motion import MouthMotion
from shared import (
    SAMPLE_RATE,
    InvalidRequest,
    SequenceModel,
    audio_samples,
    frame_rate,
    input_array,
    input_flag,
)
from source_mouths import PASSED, SourceMouths


@dataclass
class Session:
    tracker: FaceTracker
    motion: MouthMotion
    mouths: SourceMouths = field(default_factory=SourceMouths)  # the video's open mouths
    frames: deque = field(default_factory=deque)  # (source index, frame) waiting for audio
    openness: deque = field(default_factory=deque)
    next_frame: int = 0
    last_used: float = field(default_factory=time.monotonic)


class TritonPythonModel(SequenceModel):
    FAILURE = "lipsync failed"
    FIRST_INPUT = "FPS"
    log = logging.getLogger("lipsync")

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self._max_frames = int(config["parameters"]["max_frames_per_response"]["string_value"])
        self._start_sequences(config)
        self._analyzer = FaceAnalyzer()
        self._follower = MeshFollower()

    def finalize(self) -> None:
        self._analyzer.close()
        self._follower.close()

    def _handle(self, request, sender, corrid: int) -> None:
        session: Session = self._session(request, corrid)
        end = input_flag(request, "END")

        frames = input_array(request, "FRAMES_IN")
        indices = input_array(request, "SOURCE_INDEX")
        if frames is not None:
            if indices is None or len(indices) != len(frames):
                raise InvalidRequest("SOURCE_INDEX must give one index per frame of FRAMES_IN")
            session.frames.extend(zip(indices.tolist(), frames, strict=True))
            # Track on arrival: the library of source mouths then also holds the frames that
            # still wait for their audio (meshes are cached: rendering does not track again).
            for index, frame in zip(indices.tolist(), frames, strict=True):
                session.mouths.observe(index, frame, session.tracker.mesh(int(index), frame))
        session.openness.extend(session.motion.push(audio_samples(request)).tolist())
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
            out, opens, found, paths = [], [], [], []
            for _ in range(n):
                index, frame = session.frames.popleft()
                openness = session.openness.popleft()
                mesh = session.tracker.mesh(int(index), frame)
                if mesh is None:
                    image, path = frame, PASSED
                else:
                    image, path, _ = session.mouths.render(frame, mesh, openness)
                out.append(image)
                opens.append(openness)
                found.append(mesh is not None)
                paths.append(path)
            sender.send(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("FRAMES", np.stack(out)),
                        pb_utils.Tensor("FIRST_FRAME", np.array([session.next_frame], np.int64)),
                        pb_utils.Tensor("MOUTH_OPEN", np.array(opens, np.float32)),
                        pb_utils.Tensor("FACE_FOUND", np.array(found, np.uint8)),
                        pb_utils.Tensor("MOUTH_SOURCE", np.array(paths, np.uint8)),
                    ]
                )
            )
            session.next_frame += n

    def _new_session(self, request) -> Session:
        fps_in = input_array(request, "FPS")
        if fps_in is None:
            raise InvalidRequest("the first request needs FPS")
        fps = frame_rate(fps_in)
        index = input_array(request, "FACE_INDEX")
        box = input_array(request, "FACE_BOX")
        tracker = FaceTracker(
            self._analyzer,
            face_index=int(index.ravel()[0]) if index is not None else 0,
            face_box=tuple(float(v) for v in box.ravel()[:4]) if box is not None else None,
            fps=fps,
            follower=self._follower,
        )
        return Session(tracker=tracker, motion=MouthMotion(sample_rate=SAMPLE_RATE, fps=fps))
