"""Triton python-backend model: lipsync on a speaker video.

Tensors (config.pbtxt is the source of truth):
  FPS          fp32  [1]             first request: frame rate
  FACE_INDEX   int32 [1]             first request, optional: n-th largest face
  FACE_BOX     fp32  [4]             first request, optional: face overlapping this box (x0 y0
                                     x1 y1, whole-frame pixels)
  START_FRAME  int64 [1]             first request, optional (failover): the output starts at
                                     this frame; the AUDIO still starts at the clip's start,
                                     FRAMES_IN at this frame
  RENDER_FROM  int64 [1]             first request, optional (range re-render; not with
                                     START_FRAME, >= 0): AUDIO and FRAMES_IN start at the
                                     clip's start; every frame is processed as in a full run,
                                     the responses start at this frame: from it on, every
                                     tensor is the full run's, bit for bit (the same requests
                                     give the same responses, those before it left out and the
                                     one across it cut, its REGION kept)
  FRAMES_IN    uint8 [n, h, w, 3]    next frames in output order: whole frames, or crops of
                                     them (all n of one request the same crop), RGB
  FRAMES_I420  uint8 [n, h*3/2, w]   or the same as packed I420 (yuv_frames.py; even sizes
                                     and ORIGIN): the answer then comes in I420 too
  COLOUR_MATRIX int32 [1]            first request, optional: FRAMES_I420's matrix, an
                                     AVCOL_SPC number (1 BT.709, the default; 5, 6 BT.601)
  ORIGIN       int32 [2]             optional: x, y of the crops' top-left pixel in the whole
                                     frame; absent = (0, 0)
  SOURCE_INDEX int64 [n]             their indices in the source video
  AUDIO        fp32  [k]             next mono 16 kHz samples
  REGION       int32 [4]             response: x0 y0 x1 y1 (exclusive), whole-frame pixels: the
                                     box of FRAMES in every frame of the response
  FRAMES       uint8 [m, y1-y0, x1-x0, 3]  response: the output's pixels in REGION, in order;
                                     outside REGION each output frame is its input crop
  FRAMES_I420  uint8 [m, (y1-y0)*3/2, x1-x0]  response, instead of FRAMES for frames sent as
                                     FRAMES_I420: REGION (even edges) in packed I420; samples
                                     the model did not change are the input's, bit for bit
  FIRST_FRAME  int64 [1]             response: index of FRAMES[0]
  FACE         fp32  [m, 4]          response: the followed face (box of its smoothed mesh, x0
                                     y0 x1 y1, whole-frame pixels); zeros where none was found
  MOUTH_OPEN   fp32  [m]             response: mouth opening asked for by the speech
  FACE_FOUND   uint8 [m]             response: 0 where no face was found (frame unchanged)
  MOUTH_SOURCE uint8 [m]             response: how each frame's mouth was made: 0 passed
                                     through, 1 warp only, 2 a mouth retrieved from the
                                     video's own frames (source_mouths.py)
  FACE_SCORE   fp32  [m]             response: the tracker's confidence that it follows the
                                     chosen face, 0..1, 0 where FACE_FOUND is 0: detector
                                     score x share of the face in the frame x face width x yaw
                                     x steadiness of the mesh's fit x sharpness (face_track.py)
A response holds at most max_frames_per_response frames, all of one crop geometry (origin and
size): a response ends where the geometry changes, so REGION lies inside each of its frames'
crops. REGION is the union of what the renderer changed in its frames (the warp's and the
paste's boxes, not a diff); where nothing changed it is the 2x2 box at the crop's origin, with
the input's pixels. Everything reported (REGION, FACE) and FACE_BOX are in whole-frame pixels,
wherever the crop is: the tracker works in them (face_track.py).
Every frame's output (its pixels, FACE, MOUTH_OPEN, FACE_FOUND, MOUTH_SOURCE, FACE_SCORE) is
a function of the inputs alone (the frames, their indices, the audio, the settings), not of
how the requests cut them or how far the frames run ahead of their audio: only the
responses' cuts, and so their REGIONs, follow the requests (source_mouths.py: the library of
open mouths is causal).
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
from frame_region import Patch, moved, union
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
from video_mouth import mouth_frame
from yuv_frames import YuvFrames, cut, even_box, i420_shape_error


@dataclass
class Session:
    tracker: FaceTracker
    motion: MouthMotion
    mouths: SourceMouths = field(default_factory=SourceMouths)  # the video's open mouths
    #: (source index, frame, origin, packed) waiting for audio: the frame is an RGB crop
    #: whose top-left pixel is origin (x, y) in the whole frame; packed its I420 as sent
    #: (FRAMES_I420), None for frames sent as RGB
    frames: deque = field(default_factory=deque)
    #: FRAMES_I420's colour matrix (COLOUR_MATRIX)
    yuv: YuvFrames = field(default_factory=YuvFrames)
    openness: deque = field(default_factory=deque)
    next_frame: int = 0
    #: frames of audio before START_FRAME: analysed (the motion's state), not rendered
    skip: int = 0
    #: RENDER_FROM: frames before it are processed as in a full run, not sent
    render_from: int = 0
    last_used: float = field(default_factory=time.monotonic)
    #: when the renderer last asked whether the caller had gone (CANCEL_CHECK_SECONDS)
    checked: float = float("-inf")

    def cancelled(self, sender) -> bool:
        now = time.monotonic()
        if now - self.checked < CANCEL_CHECK_SECONDS:
            return False
        self.checked = now
        return bool(sender.is_cancelled())

    def take_openness(self, values: np.ndarray) -> None:
        for value in values.tolist():
            if self.skip:
                self.skip -= 1
            else:
                self.openness.append(value)


#: frames in a sequence's first response (later ones: max_frames_per_response)
FIRST_RESPONSE = 2
#: the renderer asks whether the caller has gone away at most this often: each question is a
#: round trip to the Triton process (the response sender's is_cancelled), which took ~2 ms on
#: the 2-core bench machine while the server was encoding: 11 % of the renderer's time when
#: it asked before every response (py-spy, 512x512). A cancelled sequence renders at most
#: this much longer.
CANCEL_CHECK_SECONDS = 0.2


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
        packed = input_array(request, "FRAMES_I420")
        indices = input_array(request, "SOURCE_INDEX")
        if packed is not None:
            if frames is not None:
                raise InvalidRequest("send FRAMES_IN or FRAMES_I420, not both")
            frames, packed = self._from_i420(session, packed, _origin(request))
        if frames is not None:
            if indices is None or len(indices) != len(frames):
                raise InvalidRequest("SOURCE_INDEX must give one index per frame of FRAMES_IN")
            if min(frames.shape[1:3]) < 2:  # REGION is never empty: 2x2 at least
                height, width = frames.shape[1:3]
                raise InvalidRequest(f"FRAMES_IN must be at least 2x2 pixels, got {width}x{height}")
            origin = _origin(request)
            # Frames are tracked as they are rendered (_render), each while the frame before
            # it is drawn. The library of source mouths takes a frame only when it is
            # rendered too: what it holds for a frame must not depend on how far ahead of
            # their audio the frames came (source_mouths.py).
            for k, (index, frame) in enumerate(zip(indices.tolist(), frames, strict=True)):
                session.frames.append(
                    (int(index), frame, origin, packed[k] if packed is not None else None)
                )
        session.take_openness(session.motion.push(audio_samples(request)))
        if end:
            session.take_openness(session.motion.finish())
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
            if session.cancelled(sender):
                session.frames.clear()
                return
            batch = self._next_batch(session)
            first = session.next_frame
            session.next_frame += len(batch)
            # RENDER_FROM: the batches are those of a full run (the same requests give the
            # same cuts); its frames before RENDER_FROM are not sent. A batch wholly before
            # it only moves the state on; one across it is rendered whole (its REGION is the
            # full run's) and sent from RENDER_FROM on.
            hidden = min(len(batch), max(0, session.render_from - first))
            # Each frame joins the library of open mouths just before its own choice, in
            # output order: the library for frame i holds frames 0..i whatever the cuts.
            if hidden == len(batch):
                for index, frame, origin, _ in batch:
                    openness = session.openness.popleft()
                    mesh = session.tracker.mesh(index, frame, origin)
                    if mesh is not None:
                        local = _in_crop(mesh, origin)
                        mf = mouth_frame(local)  # once for the library and the choice
                        session.mouths.observe(index, frame, local, mf)
                        session.mouths.advance(frame, local, openness, mf)
                continue
            patches: list[Patch | None] = []
            opens, faces, found, paths, scores = [], [], [], [], []
            for k, (index, frame, origin, _) in enumerate(batch):
                openness = session.openness.popleft()
                mesh = session.tracker.mesh(index, frame, origin)
                # the landmarker starts on the next frame and works, in MediaPipe's threads
                # and without the GIL, while this one is drawn: most of its ~3 ms a frame
                # leaves the renderer's thread (on 2 cores: CPU the server's encoder and
                # decoder would leave idle)
                _prefetch(session, batch[k + 1] if k + 1 < len(batch) else None)
                if mesh is None:
                    patch, path = None, PASSED
                else:
                    local = _in_crop(mesh, origin)
                    mf = mouth_frame(local)  # once for the library, the warp and the choice
                    session.mouths.observe(index, frame, local, mf)
                    patch, path, _ = session.mouths.render(frame, local, openness, mf)
                patches.append(patch)
                opens.append(openness)
                faces.append(_face_box(mesh))
                found.append(mesh is not None)
                paths.append(path)
                scores.append(session.tracker.score(index))
            _, frame, origin, packed = batch[0]
            changed = [p.box for p in patches if p is not None]
            height, width = frame.shape[:2]
            box = union(changed) if changed else (0, 0, min(2, width), min(2, height))
            if packed is None:
                name, out = "FRAMES", []
                for (_, frame, _, _), patch in zip(batch[hidden:], patches[hidden:], strict=True):
                    region = Patch.cut(frame, box)
                    if patch is not None:
                        region.write(patch)
                    out.append(region.pixels)
            else:
                box = even_box(box, width, height)
                name, out = (
                    "FRAMES_I420",
                    _i420_regions(session.yuv, batch[hidden:], patches[hidden:], box),
                )
            sent = np.s_[hidden:]
            sender.send(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("REGION", np.array(moved(box, *origin), np.int32)),
                        pb_utils.Tensor(name, np.stack(out)),
                        pb_utils.Tensor("FIRST_FRAME", np.array([first + hidden], np.int64)),
                        pb_utils.Tensor("FACE", np.array(faces, np.float32)[sent].reshape(-1, 4)),
                        pb_utils.Tensor("MOUTH_OPEN", np.array(opens, np.float32)[sent]),
                        pb_utils.Tensor("FACE_FOUND", np.array(found, np.uint8)[sent]),
                        pb_utils.Tensor("MOUTH_SOURCE", np.array(paths, np.uint8)[sent]),
                        pb_utils.Tensor("FACE_SCORE", np.array(scores, np.float32)[sent]),
                    ]
                )
            )

    def _next_batch(self, session: Session) -> list[tuple[int, np.ndarray, tuple[int, int]]]:
        """The next frames to send together: at most max_frames_per_response, as many as have
        their audio, and all of the first one's crop geometry (REGION must lie in every one)."""
        # The first response goes out after FIRST_RESPONSE frames: the client's first chunk
        # waits for it, and the encoder's first fragment holds two frames anyway.
        most = self._max_frames if session.next_frame else min(self._max_frames, FIRST_RESPONSE)
        n = min(most, len(session.frames), len(session.openness))
        batch = [session.frames.popleft()]
        geometry = _geometry(batch[0])
        while len(batch) < n and _geometry(session.frames[0]) == geometry:
            batch.append(session.frames.popleft())
        return batch

    def _from_i420(
        self, session: Session, packed: np.ndarray, origin: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """FRAMES_I420 checked, and its frames in RGB (the tracker and renderer work in RGB)."""
        if packed.ndim != 3 or not len(packed):
            raise InvalidRequest(
                f"FRAMES_I420 must be [n, height * 3 / 2, width], got {list(packed.shape)}"
            )
        error = i420_shape_error(packed[0])
        if error is not None:
            raise InvalidRequest(f"FRAMES_I420: {error}")
        if origin[0] % 2 or origin[1] % 2:
            raise InvalidRequest(
                f"ORIGIN must be even for FRAMES_I420 (whole chroma blocks), got {list(origin)}"
            )
        height, width = packed.shape[1] * 2 // 3, packed.shape[2]
        rgb = np.empty((len(packed), height, width, 3), np.uint8)
        for frame, out in zip(packed, rgb, strict=True):  # each converted in place
            session.yuv.to_rgb(frame, out=out)
        return rgb, packed

    def _new_session(self, request) -> Session:
        fps_in = input_array(request, "FPS")
        if fps_in is None:
            raise InvalidRequest("the first request needs FPS")
        fps = frame_rate(fps_in)
        index = input_array(request, "FACE_INDEX")
        box = input_array(request, "FACE_BOX")
        face_box = None
        if box is not None:  # x0 y0 x1 y1, whole-frame pixels (Triton checks the 4)
            x0, y0, x1, y1 = (float(v) for v in box.ravel()[:4])
            face_box = (x0, y0, x1, y1)
        tracker = FaceTracker(
            self._analyzer,
            face_index=int(index.ravel()[0]) if index is not None else 0,
            face_box=face_box,
            fps=fps,
            follower=self._follower,
        )
        start = input_array(request, "START_FRAME")
        skip = max(0, int(start.ravel()[0])) if start is not None else 0
        render_from = input_array(request, "RENDER_FROM")
        hidden = 0
        if render_from is not None:
            if start is not None:
                raise InvalidRequest(
                    "START_FRAME and RENDER_FROM cannot go together: RENDER_FROM takes the "
                    "frames from the clip's start, START_FRAME from that frame"
                )
            hidden = int(render_from.ravel()[0])
            if hidden < 0:
                raise InvalidRequest(f"RENDER_FROM must be a frame index >= 0, got {hidden}")
        motion = MouthMotion(sample_rate=SAMPLE_RATE, fps=fps)
        matrix = input_array(request, "COLOUR_MATRIX")
        try:
            yuv = YuvFrames(int(matrix.ravel()[0])) if matrix is not None else YuvFrames()
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return Session(
            tracker=tracker,
            motion=motion,
            next_frame=skip,
            skip=skip,
            render_from=hidden,
            yuv=yuv,
        )


def _prefetch(session: Session, item: tuple | None) -> None:
    """Start tracking the frame to be rendered next: ``item`` (the batch's next frame), or
    the first one waiting when the batch ends here."""
    if item is None:
        if not session.frames:
            return
        item = session.frames[0]
    index, frame, origin, _ = item
    session.tracker.prefetch(index, frame, origin)


def _geometry(item: tuple) -> tuple:
    """What the frames of one response share: the crop's origin and size, and the format."""
    _, frame, origin, packed = item
    return origin, frame.shape, packed is None


def _i420_regions(
    yuv: YuvFrames, batch: list[tuple], patches: list[Patch | None], box: tuple[int, int, int, int]
) -> list[np.ndarray]:
    """Each frame's packed I420 in ``box`` (even edges, crop pixels): the input's samples,
    with what its patch changed (grown to whole chroma blocks) converted from RGB."""
    out = []
    for (_, frame, _, packed), patch in zip(batch, patches, strict=True):
        region = cut(packed, box)
        if patch is not None:
            height, width = frame.shape[:2]
            changed = even_box(patch.box, width, height)
            rgb = Patch.cut(frame, changed)
            rgb.write(patch)
            yuv.write(region, rgb.pixels, (changed[0] - box[0], changed[1] - box[1]))
        out.append(region)
    return out


def _origin(request) -> tuple[int, int]:
    """ORIGIN (x, y of the crops' top-left pixel in the whole frame), (0, 0) when absent."""
    origin = input_array(request, "ORIGIN")
    if origin is None:
        return 0, 0
    values = origin.ravel()
    if len(values) != 2 or values.min() < 0:
        raise InvalidRequest(f"ORIGIN must be two non-negative pixels x, y, got {values.tolist()}")
    return int(values[0]), int(values[1])


def _in_crop(mesh: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """A whole-frame mesh in the pixels of the crop at ``origin`` (exact in float32 where the
    face lies in the crop: whole pixels off, the values only get smaller)."""
    if origin == (0, 0):
        return mesh
    return mesh - np.array([origin[0], origin[1], 0], np.float32)


def _face_box(mesh: np.ndarray | None) -> tuple[float, float, float, float]:
    """The box around the whole mesh (x0, y0, x1, y1), zeros for no face."""
    if mesh is None:
        return 0.0, 0.0, 0.0, 0.0
    x0, y0 = mesh[:, :2].min(0)
    x1, y1 = mesh[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1)
