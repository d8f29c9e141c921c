"""Faces and their 478-point 3D mesh with MediaPipe (pure numpy/OpenCV/MediaPipe, no Triton).

Two MediaPipe models do the work, both shipped inside the ``mediapipe`` wheel (Apache-2.0,
nothing is downloaded at run time):

* BlazeFace full-range detection (``face_detection_full_range_sparse.tflite``) finds the faces
  in the whole picture (~6 ms at any size: it looks at 192x192);
* the Face Mesh landmarker with attention (``face_landmark_with_attention.tflite``, behind
  ``FaceMesh(refine_landmarks=True)``) gives 478 points per face: 468 mesh points with the
  outer and inner lip contours (20 points each) and 10 iris points. It runs on a square crop
  around each detected face, so a small face in a large picture is seen at the landmarker's
  full resolution.

The mesh is (478, 3) float32 in the analysed image's pixels: x, y, and z (depth, same scale as
x, smaller = nearer the camera). ``Face.landmarks`` derives the 68 points of the iBUG scheme
the renderers were written for (``DLIB68``), so every consumer of "68 landmarks" keeps working
while it moves to the dense points.

Shared by face_landmarks (this file) and lipsync (lipsync/1/face_mesh.py is a relative symlink
to it: the lipsync model tracks faces through a video with the same models).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
from google.protobuf import message_factory

# mediapipe 0.10.21's bindings call MessageFactory.GetPrototype, which protobuf 5 removed. The
# models' environment pins protobuf 4.25 (mediapipe's own cap); the server's environment, where
# the model code is unit-tested too, has protobuf 6 (grpcio needs it): give it the same call.
if not hasattr(message_factory.MessageFactory, "GetPrototype"):
    message_factory.MessageFactory.GetPrototype = (  # type: ignore[attr-defined]
        lambda self, descriptor: message_factory.GetMessageClass(descriptor)
    )

# MediaPipe logs through glog/absl to stderr at import; keep Triton's log readable.
os.environ.setdefault("GLOG_minloglevel", "2")
from mediapipe.python.solutions import face_detection as mp_detection
from mediapipe.python import packet_creator
from mediapipe.python._framework_bindings import image_frame
from mediapipe.python.solution_base import PacketDataType
from mediapipe.python.solutions import face_mesh as mp_mesh

N_MESH = 478

#: MediaPipe mesh index of each of the 68 iBUG points (jaw, brows, nose, eyes, lips), so code
#: written for the 68-point scheme runs on the mesh. Symmetric pairs check out (127/356,
#: 33/263, 61/291); tests/models/test_face_mesh.py compares them with an independent model.
DLIB68 = np.array(
    [
        *(127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356),
        *(70, 63, 105, 66, 107, 336, 296, 334, 293, 300),  # brows
        *(168, 197, 5, 4, 75, 97, 2, 326, 305),  # nose bridge, nose base
        *(33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380),  # eyes
        *(61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181),  # outer lips
        *(78, 82, 13, 312, 308, 317, 14, 87),  # inner lips
    ]
)

#: the detector's confidence below which a detection is not a face
MIN_SCORE = 0.5
#: a detection scoring below this fraction of the best one in the image is dropped (a badge or
#: a poster next to a clear face)
RELATIVE_SCORE = 0.25
#: the landmarker sees a square crop this many face-box widths wide around each face
_CROP_SCALE = 2.0
#: ... downscaled to at most this side (the landmarker itself works on 192x192; a larger crop
#: only costs conversion time), and upscaled to at least this one (MediaPipe's own detector in
#: the crop, short-range BlazeFace at 128x128, misses faces in a crop of a few dozen pixels)
_CROP_SIDE = 512
_MIN_CROP_SIDE = 256
#: ``confirms`` looks for a face this many box sides wide around the box first
_CONFIRM_SCALE = 2.5
#: pictures larger than this on the long side are searched again in overlapping tiles when the
#: whole-picture pass finds nothing: the detector sees 192x192, so a face under ~5 % of the
#: picture's width is too small for it in one pass
_TILE_ABOVE = 480


@dataclass(frozen=True)
class Face:
    """One face, in the pixel coordinates of the analysed image."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 around the 68 points
    score: float  # detector confidence in [0, 1]
    mesh: np.ndarray  # (478, 3) float32: x, y, depth in pixels

    @property
    def landmarks(self) -> np.ndarray:
        """The 68 iBUG points (x, y) taken from the mesh, float32."""
        return np.ascontiguousarray(self.mesh[DLIB68, :2], dtype=np.float32)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    """The box around the 68 iBUG points of a mesh (or of 68 points): brows to chin, cheek to
    cheek, as dlib's detector boxes were."""
    pts = points[DLIB68, :2] if len(points) == N_MESH else points[:, :2]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceAnalyzer:
    """Finds faces and their meshes in RGB images of any size.

    One instance holds its own MediaPipe graphs: use it from one thread at a time (each Triton
    model instance is its own process with its own analyzer).
    """

    def __init__(self) -> None:
        self._detector = mp_detection.FaceDetection(
            model_selection=1, min_detection_confidence=MIN_SCORE
        )
        # The short-range model (faces filling much of the picture) finds what the full-range
        # one misses on soft, upscaled faces (LFW's 25 px faces blown up 12x: 0.7 vs nothing).
        self._close_detector = mp_detection.FaceDetection(
            model_selection=0, min_detection_confidence=MIN_SCORE
        )
        # static_image_mode: every crop is a new picture (the crops of one video are tracked by
        # the caller, who knows which face it follows).
        self._mesher = mp_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=2,
            refine_landmarks=True,
            min_detection_confidence=0.3,
        )

    def close(self) -> None:
        self._detector.close()
        self._close_detector.close()
        self._mesher.close()

    def analyze(self, image_rgb: np.ndarray, thorough: bool = True) -> list[Face]:
        """Faces in an HxWx3 uint8 RGB image, largest first (empty when there is none).

        A picture where the whole-picture pass finds nothing is searched again with the
        short-range detector (~3 ms), then in tiles: 4, then (``thorough``) 9 more, ~6 ms
        each. Video tracking passes ``thorough=False``: it searches a stretch without a face
        five times a second (face_track.ABSENT_SEARCH_SECONDS)."""
        image = _checked(image_rgb)
        height, width = image.shape[:2]
        if height < 16 or width < 16:
            return []
        found = self._detect(image, 0, 0) or self._detect(image, 0, 0, self._close_detector)
        if not found and max(height, width) > _TILE_ABOVE:
            found = self._detect_in_tiles(image, thorough)
        faces: list[Face] = []
        for box, score in found:
            mesh = self.mesh_in(image, box)
            if mesh is not None:
                faces.append(Face(box=box_of(mesh), score=score, mesh=mesh))
        faces = _without_duplicates(faces)
        if faces:
            best = max(f.score for f in faces)
            faces = [f for f in faces if f.score >= RELATIVE_SCORE * best]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def mesh_in(
        self, image_rgb: np.ndarray, box: tuple[float, float, float, float]
    ) -> np.ndarray | None:
        """The mesh (478, 3) of the face inside ``box`` (x0, y0, x1, y1), or None when the
        landmarker finds no face there. Used to follow a face from frame to frame: the previous
        frame's box is start enough (~4 ms instead of a whole-picture detection)."""
        image = np.asarray(image_rgb)
        height, width = image.shape[:2]
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * _CROP_SCALE
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = round(cx - side / 2), round(cy - side / 2)
        right, bottom = round(cx + side / 2), round(cy + side / 2)
        cl, ct, cr, cb = max(0, left), max(0, top), min(width, right), min(height, bottom)
        if cr - cl < 16 or cb - ct < 16:
            return None
        crop = image[ct:cb, cl:cr]
        crop = _fitted(crop)
        result = self._mesher.process(np.ascontiguousarray(crop))
        if not result.multi_face_landmarks:
            return None
        region = (cl, ct, cr, cb)
        candidates = [_in_pixels(face, region) for face in result.multi_face_landmarks]
        best = max(candidates, key=lambda m: iou(box_of(m), box))
        return best if iou(box_of(best), box) > 0.1 else None

    def detect(self, image_rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """The boxes of the faces the detector sees in the whole picture (no landmarks)."""
        return [box for box, _ in self._detect(_checked(image_rgb), 0, 0)]

    def confirms(self, image_rgb: np.ndarray, box: tuple[float, float, float, float]) -> bool:
        """Whether a detector sees a face overlapping ``box`` (x0, y0, x1, y1, the image's
        pixels; IoU > 0.1): first the short-range model on a square of _CONFIRM_SCALE box
        sides around it, where the face fills the picture as that model expects (~2 ms),
        then, only when it sees none there, the full-range model on the whole image (~5 ms,
        what ``detect`` runs): a face that is there costs the first alone, and the answer is
        no only when the whole-image search says so too."""
        image = _checked(image_rgb)
        height, width = image.shape[:2]
        x0, y0, x1, y1 = box
        half = max(x1 - x0, y1 - y0) * _CONFIRM_SCALE / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = max(0, round(cx - half)), max(0, round(cy - half))
        right, bottom = min(width, round(cx + half)), min(height, round(cy + half))
        if right - left >= 16 and bottom - top >= 16:
            near = self._detect(image[top:bottom, left:right], left, top, self._close_detector)
            if any(iou(found, box) > 0.1 for found, _ in near):
                return True
        return any(iou(found, box) > 0.1 for found, _ in self._detect(image, 0, 0))

    def _detect(
        self, image: np.ndarray, dx: int, dy: int, detector=None
    ) -> list[tuple[tuple[float, float, float, float], float]]:
        height, width = image.shape[:2]
        result = (detector or self._detector).process(np.ascontiguousarray(image))
        found = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0 = float(np.clip(rel.xmin * width, 0, width - 1)) + dx
            y0 = float(np.clip(rel.ymin * height, 0, height - 1)) + dy
            x1 = float(np.clip((rel.xmin + rel.width) * width, 1, width)) + dx
            y1 = float(np.clip((rel.ymin + rel.height) * height, 1, height)) + dy
            if x1 - x0 >= 4 and y1 - y0 >= 4:
                found.append(((x0, y0, x1, y1), float(detection.score[0])))
        return found

    def _detect_in_tiles(
        self, image: np.ndarray, thorough: bool
    ) -> list[tuple[tuple[float, float, float, float], float]]:
        """Overlapping tiles, each searched at a larger scale than the whole picture: 2x2 tiles
        of 3/5 of the side, then (``thorough``) 3x3 of 1/2 when those find nothing either."""
        height, width = image.shape[:2]
        for fraction, steps in ((3 / 5, 2), (1 / 2, 3))[: 2 if thorough else 1]:
            th, tw = round(height * fraction), round(width * fraction)
            found = []
            for y in np.linspace(0, height - th, steps).round().astype(int):
                for x in np.linspace(0, width - tw, steps).round().astype(int):
                    found.extend(self._detect(image[y : y + th, x : x + tw], int(x), int(y)))
            if found:
                return found
        return []


class MeshFollower:
    """Follows one face through consecutive video frames with the landmarker's own tracking.

    MediaPipe's tracking mode takes each frame's region of interest from the previous frame's
    mesh, so it skips detection: 2.5 ms per frame on a 512 px crop (static analysis of the same
    crop: 6.5 ms). It sees a fixed window around the followed face (so a second face in the
    picture cannot take its place); the window moves, and the tracker restarts (15 ms), only
    when the face drifts far from the window's centre or changes size.

    The frames may be crops of the video's pictures (``origin``: the crop's top-left pixel in
    the picture); the window and the meshes are in the picture's pixels, so the same window
    over the same pixels gives the same mesh wherever the crop is. A crop that does not hold
    the whole window restarts the tracker (its state belongs to the pixels it saw) with a
    window placed inside the crop.

    ``follow`` runs in two halves, ``submit`` and ``collect``: between them the landmarker
    works in MediaPipe's own threads, without the GIL, while the caller's thread does other
    work (lipsync renders the frame before; face_track.FaceTracker.prefetch). The mesh is the
    same either way.
    """

    def __init__(self) -> None:
        self._graph = _AsyncFaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )
        self._window: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (picture)
        self._face_side = 0.0
        #: the box of the face ``submit`` looks for, until ``collect``
        self._asked: tuple[float, float, float, float] | None = None
        #: ``submit``'s ticket for that frame (``collect`` names it)
        self._ticket = 0

    def close(self) -> None:
        if self._asked is not None:
            self.collect()
        self._graph.close()

    @property
    def window(self) -> tuple[int, int, int, int] | None:
        """The window it looks through (x0, y0, x1, y1, the picture's pixels); None after a
        restart, until the next frame."""
        return self._window

    @property
    def busy(self) -> bool:
        """Whether a frame was submitted and not collected yet."""
        return self._asked is not None

    def restart(self) -> None:
        """Forget the followed face (a seek, a cut, another face), and a frame submitted and
        not collected (a sequence that ended while the landmarker worked on its next frame)."""
        if self._asked is not None:
            self._graph.result()
            self._asked = None
        if self._window is not None:
            self._graph.reset()
        self._window = None

    def follow(
        self,
        image_rgb: np.ndarray,
        box: tuple[float, float, float, float],
        origin: tuple[int, int] = (0, 0),
    ) -> np.ndarray | None:
        """The mesh (478, 3) of the face last seen at ``box``, or None when it is gone.
        ``image_rgb`` is the crop of the picture whose top-left pixel is ``origin`` (x, y);
        ``box`` and the mesh are in the picture's pixels."""
        return self.collect(self.submit(image_rgb, box, origin))

    def submit(
        self,
        image_rgb: np.ndarray,
        box: tuple[float, float, float, float],
        origin: tuple[int, int] = (0, 0),
    ) -> int:
        """``follow``'s first half: the frame goes to the landmarker, which works on it in
        MediaPipe's threads until ``collect``; returns the frame's ticket for ``collect``. A
        frame submitted before and not collected is dropped (its ``collect`` gives None)."""
        if self._asked is not None:
            self.restart()  # (one sequence a model instance: only a sequence cut short)
        image = np.asarray(image_rgb)
        height, width = image.shape[:2]
        ox, oy = int(origin[0]), int(origin[1])
        crop_box = (ox, oy, ox + width, oy + height)
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if (
            self._window is None
            or not _contains(crop_box, self._window)
            or not self._holds(cx, cy, side)
        ):
            self.restart()
            self._window = _window(cx, cy, side * _CROP_SCALE * 1.25, crop_box)
            self._face_side = side
        wx0, wy0, wx1, wy1 = self._window
        crop = image[wy0 - oy : wy1 - oy, wx0 - ox : wx1 - ox]
        self._graph.submit(_fitted(crop))
        self._asked = box
        self._ticket += 1
        return self._ticket

    def collect(self, ticket: int | None = None) -> np.ndarray | None:
        """``follow``'s second half: the mesh of the submitted frame (waits for it), or None
        when the face is gone, or when that frame (``ticket``: the last one's when None) was
        dropped since (``restart``, another ``submit``)."""
        if self._asked is None or ticket not in (None, self._ticket):
            return None
        assert self._window is not None
        box, self._asked = self._asked, None
        faces = self._graph.result()
        if not faces:
            return None
        mesh = _in_pixels(faces[0], self._window)
        return mesh if iou(box_of(mesh), box) > 0.1 else None

    def _holds(self, cx: float, cy: float, side: float) -> bool:
        assert self._window is not None
        wx0, wy0, wx1, wy1 = self._window
        reach = 0.2 * min(wx1 - wx0, wy1 - wy0)
        centred = abs(cx - (wx0 + wx1) / 2) < reach and abs(cy - (wy0 + wy1) / 2) < reach
        return centred and 0.8 < side / max(self._face_side, 1.0) < 1.25


class _AsyncFaceMesh(mp_mesh.FaceMesh):
    """MediaPipe's FaceMesh with its ``process`` in two halves: ``submit`` puts the image into
    the graph, whose calculators run in MediaPipe's threads without the GIL; ``result`` waits
    for them and gives the faces' landmark lists (``process(image).multi_face_landmarks``).

    It reads SolutionBase's internals (mediapipe 0.10.21, pinned: tests/models/test_face_mesh
    checks that it gives ``process``'s landmarks): ``process`` itself blocks until the graph
    is idle, and builds a namedtuple class per call (~0.2 ms)."""

    _STREAM_IN, _STREAM_OUT = "image", "multi_face_landmarks"

    def submit(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
        self._graph_outputs.clear()
        self._simulated_timestamp += 33333  # as process: 30 fps
        # a copy in the packet: the graph may read it after the caller's array is gone
        packet = packet_creator.create_image_frame(
            data=image, image_format=image_frame.ImageFormat.SRGB, copy=True
        )
        self._graph.add_packet_to_input_stream(
            stream=self._STREAM_IN, packet=packet.at(self._simulated_timestamp)
        )

    def result(self) -> list | None:
        self._graph.wait_until_idle()
        packet = self._graph_outputs.get(self._STREAM_OUT)
        if packet is None:
            return None
        return self._get_packet_content(PacketDataType.PROTO_LIST, packet)


def _window(
    cx: float, cy: float, side: float, within: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """A side x side window centred on (cx, cy), moved inside the box ``within`` (and cut to
    it)."""
    left, top, right, bottom = within
    w, h = min(right - left, round(side)), min(bottom - top, round(side))
    x0 = int(np.clip(round(cx - w / 2), left, right - w))
    y0 = int(np.clip(round(cy - h / 2), top, bottom - h))
    return x0, y0, x0 + w, y0 + h


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    ox0, oy0, ox1, oy1 = outer
    x0, y0, x1, y1 = inner
    return ox0 <= x0 and oy0 <= y0 and x1 <= ox1 and y1 <= oy1


def _in_pixels(landmarks, region: tuple[int, int, int, int]) -> np.ndarray:
    """MediaPipe's normalised landmarks of a crop of ``region`` (x0, y0, x1, y1: the crop's
    place in the picture, whatever size it was resized to) as a (478, 3) float32 mesh in the
    picture's pixels. Depth is in units of the x axis, as MediaPipe gives it."""
    x0, y0, x1, y1 = region
    pts = _landmark_array(landmarks)
    mesh = np.empty((len(pts), 3), np.float32)
    mesh[:, 0] = pts[:, 0] * (x1 - x0) + x0
    mesh[:, 1] = pts[:, 1] * (y1 - y0) + y0
    mesh[:, 2] = pts[:, 2] * (x1 - x0)
    return mesh


#: a NormalizedLandmarkList's landmark on the wire when it holds x, y and z alone (MediaPipe's
#: face mesh): field 1 (length-delimited, 15 bytes), then fields 1, 2, 3 (fixed32) of 4 bytes
_WIRE_LANDMARK = 17
_WIRE_TAGS = {0: 0x0A, 1: 15, 2: 0x0D, 7: 0x15, 12: 0x1D}


def _landmark_array(landmarks) -> np.ndarray:
    """The (n, 3) float64 x, y, z of MediaPipe's landmarks (a NormalizedLandmarkList), read off
    its serialised bytes when every landmark is x, y, z alone, else field by field: the same
    float32 values (CPU a face, medians of 10 paired runs: 68 us instead of 412 us for 478
    landmarks' attributes read from Python; the follower reads one face on ~56 % of frames)."""
    n = len(landmarks.landmark)
    data = landmarks.SerializeToString()
    if n and len(data) == _WIRE_LANDMARK * n:
        rows = np.frombuffer(data, np.uint8).reshape(n, _WIRE_LANDMARK)
        if all((rows[:, k] == tag).all() for k, tag in _WIRE_TAGS.items()):
            xyz = np.ndarray((n, 3), "<f4", data, offset=3, strides=(_WIRE_LANDMARK, 5))
            return xyz.astype(np.float64)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], np.float64)


def _fitted(crop: np.ndarray) -> np.ndarray:
    """A crop scaled to a long side within _MIN_CROP_SIDE.._CROP_SIDE, contiguous (a new
    array, or ``crop`` itself where that is contiguous already)."""
    long_side = max(crop.shape[:2])
    scale = min(1.0, _CROP_SIDE / long_side) if long_side > _CROP_SIDE else 1.0
    if long_side < _MIN_CROP_SIDE:
        scale = _MIN_CROP_SIDE / long_side
    if scale != 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        # bilinear: INTER_AREA costs 5 ms at 1080p, and the landmarker resamples again anyway
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)


def _checked(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    return image


def _without_duplicates(faces: list[Face]) -> list[Face]:
    """One face seen twice (two overlapping detections, or two tiles) is kept once."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(iou(face.box, other.box) < 0.4 for other in kept):
            kept.append(face)
    return kept
