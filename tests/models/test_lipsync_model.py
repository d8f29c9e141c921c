"""lipsync/1/model.py run without Triton: its request loop (shared.SequenceModel, which the
talking avatar runs too) driven through a stand-in for ``triton_python_backend_utils``.

A sequence of requests as the a2v server sends them (frames in output order with their
source indices, audio, START/END) must come back as frames in order: faceless frames exactly
as sent, the mouth following the audio level (with the speaker's own teeth where the video
showed them: MOUTH_SOURCE says which frames), errors tagged with the status the server maps
them to, and every request closed with the FINAL flag.

The frames may be crops of the video's frames (ORIGIN) and what comes back is the changed
region alone (REGION, FRAMES inside it, FACE): ``run`` checks each response against that
contract and puts the regions back into the input crops, as the server does.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import shared
from face_mesh import FaceAnalyzer, MeshFollower
from face_track import FaceTracker
from google.protobuf import json_format, text_format
from media import i420_of, rgb_of
from shared import EYES, SAMPLE_RATE, face_axes
from skimage import data
from tritonclient.grpc import model_config_pb2
from video_mouth import inner_gap, reanimate

from bench.quality.reference_landmarks import FaceAnalyzer as ReferenceAnalyzer

LIPSYNC = Path(__file__).resolve().parents[2] / "model_repository" / "lipsync"
FPS = 25.0
FINAL = 1  # TRITONSERVER_RESPONSE_COMPLETE_FINAL


# --- a stand-in for triton_python_backend_utils ----------------------------------------------
class Tensor:
    def __init__(self, name: str, array) -> None:
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class TritonError:
    def __init__(self, message: str) -> None:
        self._message = message

    def message(self) -> str:
        return self._message


class InferenceResponse:
    def __init__(self, output_tensors=(), error: TritonError | None = None) -> None:
        self.outputs = {t.name(): t.as_numpy() for t in output_tensors}
        self.error = error


class Sender:
    def __init__(self, cancelled: bool = False) -> None:
        self.sent: list[tuple[InferenceResponse | None, int]] = []
        self.cancelled = cancelled

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        assert not any(f & FINAL for _, f in self.sent), "sent after FINAL"
        self.sent.append((response, flags))

    def is_cancelled(self) -> bool:
        return self.cancelled

    @property
    def responses(self) -> list[InferenceResponse]:
        return [r for r, _ in self.sent if r is not None]

    @property
    def errors(self) -> list[str]:
        return [r.error.message() for r in self.responses if r.error is not None]


class Request:
    def __init__(self, cancelled: bool = False, **inputs) -> None:
        self.inputs = {name: Tensor(name, value) for name, value in inputs.items()}
        self.sender = Sender(cancelled)

    def get_response_sender(self) -> Sender:
        return self.sender


PB_UTILS = types.SimpleNamespace(
    Tensor=Tensor,
    TritonError=TritonError,
    InferenceResponse=InferenceResponse,
    TritonModelException=RuntimeError,
    TRITONSERVER_RESPONSE_COMPLETE_FINAL=FINAL,
    get_input_tensor_by_name=lambda request, name: request.inputs.get(name),
)


def _config_json() -> str:
    """config.pbtxt as Triton hands it to initialize()."""
    text = (LIPSYNC / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    return json_format.MessageToJson(config, preserving_proto_field_name=True)


@pytest.fixture(scope="module")
def model_class():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "triton_python_backend_utils", PB_UTILS)
        mp.setattr(shared, "pb_utils", PB_UTILS)
        spec = importlib.util.spec_from_file_location("lipsync_model", LIPSYNC / "1" / "model.py")
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
        yield module.TritonPythonModel


@pytest.fixture
def model(model_class):
    instance = model_class()
    instance.initialize({"model_config": _config_json()})
    return instance


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


def voiced(seconds: float, level: float) -> np.ndarray:
    """A buzzy vowel-like sound (140 Hz and its harmonics) in three syllables a second."""
    t = np.arange(round(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * k * 140.0 * t) / k for k in range(1, 25))
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 3.0 * t)
    return (level * buzz / np.abs(buzz).max() * syllables).astype(np.float32)


def request(
    corrid: int, *, start=False, end=False, frames=None, first=0, audio=(), origin=None, **more
):
    inputs = dict(
        CORRID=np.array([corrid], np.uint64),
        START=np.array([start]),
        END=np.array([end]),
        AUDIO=np.asarray(audio, np.float32),
        **more,
    )
    if start and "FPS" not in more:
        inputs["FPS"] = np.array([FPS], np.float32)
    if frames is not None:
        inputs["FRAMES_IN"] = np.stack(frames)
        inputs["SOURCE_INDEX"] = np.arange(first, first + len(frames), dtype=np.int64)
    if origin is not None:
        inputs["ORIGIN"] = np.array(origin, np.int32)
    return Request(**inputs)


MAX_FRAMES = 5  # config.pbtxt's max_frames_per_response


def run(model, *requests: Request) -> dict:
    """Execute the requests one by one, as a stream; join what came back, in frame order.

    Checks every response against the contract (REGION inside the crop of each of its
    frames, all of one crop geometry; FRAMES the size of REGION; one row per frame in the
    others) and puts each frame's REGION pixels back into its input crop, as the server does:
    "FRAMES" are the output crops (stacked when all of one size), "REGION" and "ORIGIN" given
    per frame, "SIZES" the number of frames of each response."""
    for r in requests:
        model.execute([r])
        flags = [f for _, f in r.sender.sent]
        assert flags and flags[-1] == FINAL and flags.count(FINAL) == 1  # closed, once
    crops, origins = [], []
    for r in requests:
        if "FRAMES_IN" in r.inputs:
            origin = r.inputs["ORIGIN"].as_numpy() if "ORIGIN" in r.inputs else (0, 0)
            for crop in r.inputs["FRAMES_IN"].as_numpy():
                crops.append(crop)
                origins.append(tuple(int(v) for v in origin))
    outputs = [resp.outputs for r in requests for resp in r.sender.responses if resp.outputs]
    if not outputs:
        return {}
    firsts = [int(o["FIRST_FRAME"][0]) for o in outputs]
    assert firsts == sorted(firsts)
    frames, regions, sizes, placed = [], [], [], []
    for o in outputs:
        first, m = int(o["FIRST_FRAME"][0]), len(o["FRAMES"])
        assert 1 <= m <= MAX_FRAMES
        for name in ("FACE", "MOUTH_OPEN", "FACE_FOUND", "MOUTH_SOURCE"):
            assert len(o[name]) == m, name
        assert o["FACE"].shape == (m, 4) and o["FACE"].dtype == np.float32
        assert o["REGION"].shape == (4,) and o["REGION"].dtype == np.int32
        x0, y0, x1, y1 = o["REGION"].tolist()
        assert o["FRAMES"].shape == (m, y1 - y0, x1 - x0, 3) and x1 > x0 and y1 > y0
        geometry = {(origins[k], crops[k].shape) for k in range(first, first + m)}
        assert len(geometry) == 1, "a response spans two crop geometries"
        for k, pixels in zip(range(first, first + m), o["FRAMES"], strict=True):
            (ox, oy), (height, width) = origins[k], crops[k].shape[:2]
            assert ox <= x0 and oy <= y0 and x1 <= ox + width and y1 <= oy + height
            out = crops[k].copy()
            out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = pixels
            frames.append(out)
            regions.append((x0, y0, x1, y1))
            placed.append(origins[k])
        sizes.append(m)
    joined = {
        k: np.concatenate([o[k] for o in outputs])
        for k in outputs[0]
        if k not in ("FIRST_FRAME", "FRAMES", "REGION")
    }
    same_size = len({f.shape for f in frames}) == 1
    joined["FRAMES"] = np.stack(frames) if same_size else frames
    joined["REGION"] = np.array(regions)
    joined["ORIGIN"] = np.array(placed)
    joined["SIZES"] = sizes
    return joined


def frame_samples(n: int) -> int:
    return round(n * SAMPLE_RATE / FPS)


# --- tests ------------------------------------------------------------------------------------
def test_frames_without_a_face_pass_through_unchanged(model, astronaut):
    blank = np.full_like(astronaut, 200)
    noise = np.random.default_rng(1).integers(0, 256, astronaut.shape, dtype=np.uint8)
    video = [blank, noise, blank, astronaut]
    out = run(
        model,
        request(1, start=True, frames=video[:2], audio=voiced(0.04, 0.5)),
        request(
            1, end=True, frames=video[2:], first=2, audio=voiced(0.12, 0.5)[-frame_samples(3) :]
        ),
    )
    assert out["FRAMES"].shape == (4, *astronaut.shape)
    assert out["FACE_FOUND"].tolist() == [0, 0, 0, 1]
    assert out["MOUTH_SOURCE"].tolist() == [0, 0, 0, 1]  # passed through, then the warp
    for sent, got in zip(video[:3], out["FRAMES"][:3], strict=True):
        np.testing.assert_array_equal(got, sent)
    assert np.any(out["FRAMES"][3] != astronaut)  # the face is re-animated


def test_the_mouth_follows_the_audio_level(model_class, astronaut, tmp_path):
    analyzer = FaceAnalyzer()
    (face,) = analyzer.analyze(astronaut)
    width = face_axes(face.landmarks)[1]
    n = 15  # 0.6 s: a syllable and a half
    results = {}
    for name, audio in (
        ("silence", np.zeros(frame_samples(n), np.float32)),
        ("voice", voiced(n / FPS, 0.5)),
    ):
        model = model_class()
        model.initialize({"model_config": _config_json()})
        half = frame_samples(7)
        results[name] = run(
            model,
            request(5, start=True, frames=[astronaut] * 7, audio=audio[:half]),
            request(5, end=True, frames=[astronaut] * (n - 7), first=7, audio=audio[half:]),
        )
    silent, voice = results["silence"], results["voice"]
    assert len(silent["FRAMES"]) == len(voice["FRAMES"]) == n
    assert np.all(silent["MOUTH_OPEN"] == 0.0)
    assert voice["MOUTH_OPEN"].max() > 0.8
    # measured with an independent model (dlib), not the product's own eyes
    reference = ReferenceAnalyzer()
    gaps = {
        name: [inner_gap(reference.analyze(f)[0].landmarks) for f in r["FRAMES"]]
        for name, r in results.items()
    }
    assert max(gaps["silence"]) < 0.1 * width  # shut all along
    loudest = int(np.argmax(voice["MOUTH_OPEN"]))
    assert gaps["voice"][loudest] > 0.2 * width  # wide open on the loud syllable
    quietest = int(np.argmin(voice["MOUTH_OPEN"]))
    assert gaps["voice"][quietest] < gaps["voice"][loudest] - 0.1 * width
    # The eyes and everything above them never change.
    top = int(face.landmarks[EYES, 1].max()) + 1
    for r in results.values():
        assert np.all(r["FRAMES"][:, :top] == astronaut[:top])


def _teeth_in_mouth(frame: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """Bright, nearly colourless pixels (teeth) in the mouth box x0, y0, x1, y1."""
    x0, y0, x1, y1 = box
    rgb = frame[y0:y1, x0:x1].astype(np.float32)
    return int(((rgb.mean(-1) > 150) & (rgb.max(-1) - rgb.min(-1) < 70)).sum())


def test_an_opening_mouth_shows_the_teeth_the_video_showed(model, astronaut):
    """A speaker video that smiles (teeth) and then keeps the lips shut while the speech asks
    for openings: the shut frames are opened with the smile's real teeth (MOUTH_SOURCE 2),
    where the warp alone paints a toothless dark interior; silent frames use the warp."""
    analyzer = FaceAnalyzer()
    (face,) = analyzer.analyze(astronaut)
    width = face_axes(face.landmarks)[1]
    own = inner_gap(face.mesh) / (0.30 * width)  # her smile, as an openness
    video = [reanimate(astronaut, face.mesh, o) for o in np.linspace(own, 0.0, 5)]
    video[0] = astronaut
    shut = video[-1]
    video += [shut] * 10
    n = len(video)
    audio = np.concatenate([np.zeros(frame_samples(5), np.float32), voiced(10 / FPS, 0.5)])
    half = frame_samples(7)
    out = run(
        model,
        request(13, start=True, frames=video[:7], audio=audio[:half]),
        request(13, end=True, frames=video[7:], first=7, audio=audio[half:]),
    )
    paths = out["MOUTH_SOURCE"]
    assert len(paths) == n and set(paths.tolist()) <= {1, 2}
    assert np.all(paths[:5] == 1)  # silence: the warp closes her smile
    retrieved = np.flatnonzero(paths == 2)
    assert len(retrieved) >= 2, paths  # opened with a mouth of the video
    assert np.all(out["MOUTH_OPEN"][retrieved] > 0.2)
    # Far wider than her smile (0.55): no mouth of the video is close, the warp does it.
    assert np.all(paths[out["MOUTH_OPEN"] > 0.95] == 1)
    # Between the lips: the middle 40 % of the mouth, from 30 % to 80 % of the gap asked for
    # below the upper lip (the warp keeps the upper lip and moves the lower one there; the
    # shut frame's own sliver of teeth lies above).
    (closed,) = analyzer.analyze(shut)
    right, left, upper = closed.mesh[[78, 308, 13], :2]
    x0, x1 = int(right[0] + 0.3 * (left[0] - right[0])), int(left[0] - 0.3 * (left[0] - right[0]))
    for i in retrieved:
        opening = float(out["MOUTH_OPEN"][i])
        gap = opening * 0.3 * width
        box = (x0, int(upper[1] + 0.3 * gap), x1, int(upper[1] + 0.8 * gap))
        warp_only = reanimate(shut, closed.mesh, opening)
        inside = (box[2] - box[0]) * (box[3] - box[1])
        assert inside >= 15, (i, opening)
        teeth = _teeth_in_mouth(out["FRAMES"][i], box)
        assert teeth > 0.5 * inside, (i, opening)  # teeth
        assert teeth > 2 * _teeth_in_mouth(warp_only, box), (i, opening)  # not the smudge
    # Above the mouth nothing changed.
    top = int(face.mesh[1, 1])  # the nose tip
    assert np.all(out["FRAMES"][:, :top] == np.stack(video)[:, :top])


def test_bad_requests_are_invalid_argument_and_end_the_sequence(model, astronaut):
    bad_fps = request(2, start=True, FPS=np.array([100.0], np.float32))
    nan_audio = request(3, start=True, audio=[0.0, np.nan])
    run(model, bad_fps, nan_audio)
    assert bad_fps.sender.errors == ["[INVALID_ARGUMENT] FPS must be within 1..60, got 100"]
    assert nan_audio.sender.errors == ["[INVALID_ARGUMENT] AUDIO contains NaN or infinite samples"]
    after = request(3, frames=[astronaut], audio=np.zeros(frame_samples(1)))
    run(model, after)  # the failed sequence is gone
    assert after.sender.errors == [
        "[INVALID_ARGUMENT] sequence 3 is unknown: start it with FPS first"
    ]

    short = request(4, start=True, frames=[astronaut], end=True, audio=np.zeros(frame_samples(3)))
    run(model, short)
    assert short.sender.errors[-1].startswith("[INVALID_ARGUMENT] got 1 frames for 3 frames")
    mismatch = request(6, start=True, frames=[astronaut, astronaut])
    mismatch.inputs["SOURCE_INDEX"] = Tensor("SOURCE_INDEX", np.array([0], np.int64))
    run(model, mismatch)
    assert mismatch.sender.errors == [
        "[INVALID_ARGUMENT] SOURCE_INDEX must give one index per frame of FRAMES_IN"
    ]


def test_a_failure_inside_the_model_is_internal_and_the_instance_lives_on(model, astronaut):
    # Not an image (Triton's shape check would stop this; a bug in the model would look alike)
    broken = request(
        8, start=True, end=True, frames=[astronaut[..., 0]], audio=np.zeros(frame_samples(1))
    )
    run(model, broken)
    assert len(broken.sender.errors) == 1
    assert broken.sender.errors[0].startswith("[INTERNAL] lipsync failed: ")
    again = request(8, end=True, frames=[astronaut], audio=np.zeros(frame_samples(1)))
    run(model, again)  # that sequence is over
    assert again.sender.errors[0].startswith("[INVALID_ARGUMENT] sequence 8 is unknown")
    fine = request(9, start=True, end=True, frames=[astronaut], audio=np.zeros(frame_samples(1)))
    assert len(run(model, fine)["FRAMES"]) == 1


def test_a_cancelled_request_sends_no_frames_and_is_closed(model, astronaut):
    cancelled = request(
        10, start=True, frames=[astronaut] * 3, audio=np.zeros(frame_samples(3)), cancelled=True
    )
    assert run(model, cancelled) == {}
    assert cancelled.sender.errors == []


class CancelledAfterFirst(Sender):
    """A caller that goes away once the first response has left; counts the questions."""

    asked = 0

    def is_cancelled(self) -> bool:
        self.asked += 1
        return bool(self.responses)


@pytest.mark.parametrize("every", [0.0, 3600.0])
def test_a_caller_that_goes_away_is_noticed_within_the_check_interval(
    model, astronaut, monkeypatch, every
):
    """The renderer asks whether the caller is still there (a round trip to Triton) at most
    every CANCEL_CHECK_SECONDS, not before each response: asking every time, it stops after the
    first response of a long request; asking once an hour, it renders the request's 17 frames
    (a first response of 2, then 3 of 5) and asked once."""
    module = sys.modules[type(model).__module__]
    monkeypatch.setattr(module, "CANCEL_CHECK_SECONDS", every)
    going = request(13, start=True, end=True, frames=[astronaut] * 17, audio=voiced(0.68, 0.3))
    going.sender = CancelledAfterFirst()
    model.execute([going])
    sizes = [len(r.outputs["FRAMES"]) for r in going.sender.responses]
    assert going.sender.sent[-1][1] == FINAL and going.sender.errors == []
    if every:
        assert sizes == [2, 5, 5, 5] and going.sender.asked == 1
    else:
        assert sizes == [2] and going.sender.asked == 2


def test_a_new_sequence_replaces_one_that_never_ended(model, astronaut):
    run(model, request(11, start=True, frames=[astronaut], audio=np.zeros(frame_samples(1))))
    out = run(
        model,
        request(12, start=True, end=True, frames=[astronaut] * 2, audio=np.zeros(frame_samples(2))),
    )
    assert len(out["FRAMES"]) == 2
    late = request(11, end=True, frames=[astronaut], first=1, audio=np.zeros(frame_samples(1)))
    run(model, late)
    assert late.sender.errors == [
        "[INVALID_ARGUMENT] sequence 11 is unknown: start it with FPS first"
    ]


def test_the_config_is_what_the_model_reads():
    config = json.loads(_config_json())
    assert int(config["parameters"]["max_frames_per_response"]["string_value"]) >= 1
    assert int(config["sequence_batching"]["max_sequence_idle_microseconds"]) > 0


# --- crops: the window the server sends around the face ----------------------------------------
CANVAS = (720, 960)  # height, width of the "whole frame"


def _on_canvas(image: np.ndarray, x: int, y: int) -> np.ndarray:
    canvas = np.full((*CANVAS, 3), 90, np.uint8)
    h, w = image.shape[:2]
    canvas[y : y + h, x : x + w] = image
    return canvas


@pytest.fixture(scope="module")
def moving_speaker(astronaut) -> list[np.ndarray]:
    """16 whole frames (960 x 720): the astronaut's smile closing over 5 frames, then shut,
    her head moving 2 px right and 1 px down a frame (past a re-detection, every 15 frames)."""
    (face,) = FaceAnalyzer().analyze(astronaut)
    width = face_axes(face.landmarks)[1]
    own = inner_gap(face.mesh) / (0.30 * width)
    mouths = [astronaut] + [reanimate(astronaut, face.mesh, o) for o in np.linspace(own, 0, 5)[1:]]
    mouths += [mouths[-1]] * 11
    return [_on_canvas(m, 200 + 2 * i, 100 + i) for i, m in enumerate(mouths)]


def _speech(n: int) -> np.ndarray:
    return np.concatenate([np.zeros(frame_samples(5), np.float32), voiced((n - 5) / FPS, 0.5)])


def _stream(video, audio, pieces) -> list[Request]:
    """One request per (first frame, end frame, crop origin or None, crop size) of ``pieces``:
    the frames cut to that crop, with their audio."""
    requests = []
    for k, (a, b, origin, size) in enumerate(pieces):
        frames = video[a:b]
        if origin is not None:
            (x, y), (w, h) = origin, size
            frames = [f[y : y + h, x : x + w] for f in frames]
        requests.append(
            request(
                21,
                start=k == 0,
                end=b == len(video),
                frames=frames,
                first=a,
                audio=audio[frame_samples(a) : frame_samples(b)],
                origin=origin,
            )
        )
    return requests


def _whole(out: dict, video: list[np.ndarray]) -> np.ndarray:
    """The output crops put back into the whole input frames."""
    frames = []
    for crop, (x, y), source in zip(out["FRAMES"], out["ORIGIN"], video, strict=True):
        whole = source.copy()
        whole[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        frames.append(whole)
    return np.stack(frames)


def test_crops_anywhere_give_what_whole_frames_give(model_class, moving_speaker):
    """The same video as whole frames, as the server sends it (whole frames until the face is
    known, then a window around it that moves now and then, changing size): the same faces
    and pixels, bit for bit. As crops from the start at two other places: the same within
    MediaPipe's differences on other pixels."""
    video, n = moving_speaker, len(moving_speaker)
    audio = _speech(n)

    def run_as(pieces) -> dict:
        model = model_class()
        model.initialize({"model_config": _config_json()})
        return run(model, *_stream(video, audio, pieces))

    whole = run_as([(0, 7, None, None), (7, n, None, None)])
    assert whole["FACE_FOUND"].all()
    assert set(whole["MOUTH_SOURCE"].tolist()) == {1, 2}  # the warp, and retrieved mouths
    x0, y0, x1, y1 = whole["REGION"].T
    assert np.all((x1 - x0) * (y1 - y0) < 0.05 * CANVAS[0] * CANVAS[1])  # the mouth, not all

    # As the server does it: the follower's window lies in every crop, so nothing changes.
    served = run_as(
        [
            (0, 3, None, None),
            (3, 5, (200, 60), (420, 420)),
            (5, 11, (230, 90), (400, 440)),
            (11, n, (200, 60), (420, 420)),
        ]
    )
    # (the responses are cut elsewhere, so their REGIONs differ: one per response)
    for name in ("FACE", "MOUTH_SOURCE", "MOUTH_OPEN"):
        np.testing.assert_array_equal(served[name], whole[name], err_msg=name)
    np.testing.assert_array_equal(_whole(served, video), whole["FRAMES"])

    # Crops from the start: the face is found in the crop (MediaPipe's detector sees other
    # pixels: the meshes differ by a fraction of a pixel, see test_face_track), then followed.
    # The regions agree to a pixel; the pixels in them as a sub-pixel move of the lips makes
    # them differ (~1 level on average, measured 0.2-1.9).
    for origin, size in (((180, 50), (440, 440)), ((251, 97), (380, 400))):
        cropped = run_as([(0, 7, origin, size), (7, n, origin, size)])
        np.testing.assert_allclose(cropped["FACE"], whole["FACE"], atol=0.5)
        np.testing.assert_array_equal(cropped["MOUTH_SOURCE"], whole["MOUTH_SOURCE"])
        assert np.abs(cropped["REGION"] - whole["REGION"]).max() <= 1
        outputs = _whole(cropped, video).astype(np.int16)
        for k, (x0, y0, x1, y1) in enumerate(whole["REGION"]):
            diff = np.abs(outputs[k, y0:y1, x0:x1] - whole["FRAMES"][k, y0:y1, x0:x1])
            assert diff.mean() < 3, (origin, k)


def test_a_response_without_a_change_is_two_pixels_at_the_crop(model, astronaut):
    """No face in a crop (or nothing to move): REGION is the 2x2 box at the crop's origin and
    FRAMES its input pixels (never an empty tensor)."""
    blank = np.full((80, 120, 3), 200, np.uint8)
    blank[0, 1] = (1, 2, 3)
    sent = request(
        14, start=True, end=True, frames=[blank] * 2, origin=(37, 21), audio=voiced(0.08, 0.5)
    )
    out = run(model, sent)
    assert out["FACE_FOUND"].tolist() == [0, 0]
    np.testing.assert_array_equal(out["FACE"], np.zeros((2, 4), np.float32))
    (response,) = sent.sender.responses
    assert response.outputs["REGION"].tolist() == [37, 21, 39, 23]
    np.testing.assert_array_equal(response.outputs["FRAMES"], np.stack([blank[:2, :2]] * 2))


def test_the_region_is_what_changed_around_the_mouth(model, astronaut):
    """REGION holds the mouth and the jaw the warp moves and not much more: the pixels that
    changed span most of it; the eyes are outside it; FACE is the face's box."""
    n = 10
    out = run(
        model,
        request(15, start=True, end=True, frames=[astronaut] * n, audio=voiced(n / FPS, 0.5)),
    )
    (face,) = FaceAnalyzer().analyze(astronaut)
    mesh_box = np.concatenate([face.mesh[:, :2].min(0), face.mesh[:, :2].max(0)])
    for k in range(n):
        np.testing.assert_allclose(out["FACE"][k], mesh_box, atol=3.0)
    x0, y0, x1, y1 = out["REGION"][np.argmax(out["MOUTH_OPEN"])]
    lips = face.mesh[[61, 291, 0, 17, 152], :2]  # corners, lips' middle, chin
    assert np.all((lips[:, 0] > x0) & (lips[:, 0] < x1) & (lips[:, 1] > y0) & (lips[:, 1] < y1))
    assert y0 > face.landmarks[EYES, 1].max()
    changed = np.any(out["FRAMES"] != astronaut, axis=-1)
    ys, xs = np.nonzero(changed.any(0))
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    # tight: what changed spans most of the box (a diff of the frame would be no tighter)
    assert xs.max() - xs.min() > 0.7 * (x1 - x0) and ys.max() - ys.min() > 0.7 * (y1 - y0)


def test_a_response_ends_where_the_crop_changes(model, astronaut):
    """Frames of two crop geometries waiting together (their audio comes last) are answered
    in two responses, each within its crops; the origin and the size each count."""
    face_crop = ((100, 20), (320, 300))
    moved = ((110, 20), (320, 300))
    resized = ((110, 20), (330, 300))

    def cut(origin_size):
        (x, y), (w, h) = origin_size
        return astronaut[y : y + h, x : x + w]

    requests = [
        request(16, start=True, frames=[cut(face_crop)] * 2, origin=face_crop[0]),
        request(16, frames=[cut(moved)] * 2, first=2, origin=moved[0]),
        request(16, frames=[cut(resized)] * 3, first=4, origin=resized[0]),
        request(16, end=True, audio=voiced(7 / FPS, 0.5)),
    ]
    out = run(model, *requests)
    assert out["SIZES"] == [2, 2, 3]
    assert out["FACE_FOUND"].all()


def test_a_crop_under_two_pixels_is_invalid_argument(model):
    bad = request(18, start=True, frames=[np.zeros((1, 40, 3), np.uint8)], origin=(5, 5))
    run(model, bad)
    assert bad.sender.errors == [
        "[INVALID_ARGUMENT] FRAMES_IN must be at least 2x2 pixels, got 40x1"
    ]


@pytest.mark.parametrize("origin", [(-1, 0), (3, 4, 5)])
def test_a_bad_origin_is_invalid_argument(model, astronaut, origin):
    bad = request(17, start=True, frames=[astronaut[:100, :100]], origin=origin)
    run(model, bad)
    assert bad.sender.errors == [
        f"[INVALID_ARGUMENT] ORIGIN must be two non-negative pixels x, y, got {list(origin)}"
    ]


def test_a_sequence_reopened_at_a_later_frame_goes_on_from_there(model_class, moving_speaker):
    """Failover: a new sequence with START_FRAME=k gets the audio from the clip's start and
    the frames from k; its output starts at frame k with the mouth opening a sequence run
    from the start gives there (the motion is analysed from all of the audio)."""
    video, n, k = moving_speaker, len(moving_speaker), 7
    audio = _speech(n)

    def fresh():
        model = model_class()
        model.initialize({"model_config": _config_json()})
        return model

    whole = run(fresh(), *_stream(video, audio, [(0, n, None, None)]))
    model = fresh()
    requests = [
        request(22, start=True, audio=audio[: frame_samples(k)], START_FRAME=np.array([k])),
        request(22, end=True, frames=video[k:], first=k, audio=audio[frame_samples(k) :]),
    ]
    for r in requests:
        model.execute([r])
    outputs = [resp.outputs for r in requests for resp in r.sender.responses if resp.outputs]
    firsts = [int(o["FIRST_FRAME"][0]) for o in outputs]
    assert firsts[0] == k and sum(len(o["FRAMES"]) for o in outputs) == n - k
    opening = np.concatenate([o["MOUTH_OPEN"] for o in outputs])
    np.testing.assert_array_equal(opening, whole["MOUTH_OPEN"][k:])
    assert np.concatenate([o["FACE_FOUND"] for o in outputs]).all()


# --- RENDER_FROM: a range re-rendered with the frames of the full run ---------------------------
@pytest.fixture(scope="module")
def talking_speaker(astronaut) -> list[np.ndarray]:
    """50 whole frames (960 x 720): the astronaut's mouth opening and closing (her smile to
    shut and back, so the library of open mouths fills and is used) while her head moves 2 px
    right and 1 px down a frame (past re-detections at 15, 30 and 45)."""
    (face,) = FaceAnalyzer().analyze(astronaut)
    width = face_axes(face.landmarks)[1]
    own = inner_gap(face.mesh) / (0.30 * width)
    opens = own * (0.5 + 0.5 * np.cos(np.arange(50) / 2.5))
    return [
        _on_canvas(reanimate(astronaut, face.mesh, o), 200 + 2 * i, 100 + i)
        for i, o in enumerate(opens)
    ]


def _responses(model, requests: list[Request]) -> list[dict]:
    for r in requests:
        model.execute([r])
        flags = [f for _, f in r.sender.sent]
        assert flags and flags[-1] == FINAL and flags.count(FINAL) == 1
        assert r.sender.errors == []
    return [resp.outputs for r in requests for resp in r.sender.responses if resp.outputs]


def _from(outputs: list[dict], k: int) -> list[dict]:
    """The responses of a full run from frame ``k`` on: those before it left out, the one
    across it cut (its per-frame rows; REGION as it was)."""
    kept = []
    for o in outputs:
        first, m = int(o["FIRST_FRAME"][0]), len(o["FRAMES"])
        if first + m <= k:
            continue
        cut = max(0, k - first)
        kept.append(
            {
                name: value if name == "REGION" else value[cut:]
                for name, value in o.items()
                if name != "FIRST_FRAME"
            }
            | {"FIRST_FRAME": np.array([first + cut], np.int64)}
        )
    return kept


def test_render_from_gives_the_full_runs_frames_bit_for_bit(model_class, talking_speaker):
    """RENDER_FROM=k with the same requests as a full run: the responses are the full run's
    from frame k on, every tensor equal (the tracker's smoothing, the mesh reuse, the mouth
    library and its choice all evolved over frames 0..k-1 as in the full run); nothing before
    k is sent. A failover restart there (START_FRAME) does not give them: the state matters."""
    video, n, k = talking_speaker, len(talking_speaker), 30
    audio = _speech(n)
    pieces = [(a, min(a + 7, n), None, None) for a in range(0, n, 7)]

    def fresh():
        model = model_class()
        model.initialize({"model_config": _config_json()})
        return model

    full = _responses(fresh(), _stream(video, audio, pieces))
    assert sum(len(o["FRAMES"]) for o in full) == n
    joined = {name: np.concatenate([o[name] for o in full]) for name in ("MOUTH_SOURCE",)}
    assert set(joined["MOUTH_SOURCE"][k:].tolist()) == {1, 2}  # the library is used there
    for at in (k, 31, 1):
        requests = _stream(video, audio, pieces)
        requests[0].inputs["RENDER_FROM"] = Tensor("RENDER_FROM", np.array([at], np.int64))
        ranged = _responses(fresh(), requests)
        expected = _from(full, at)
        assert int(ranged[0]["FIRST_FRAME"][0]) == at
        assert len(ranged) == len(expected)
        for got, want in zip(ranged, expected, strict=True):
            assert got.keys() == want.keys()
            for name in want:
                assert got[name].dtype == want[name].dtype, name
                assert np.array_equal(got[name], want[name]), (at, name)

    # The same frames from k with a fresh state (failover) differ: the test can tell.
    model = fresh()
    restarted = _responses(
        model,
        [
            request(21, start=True, audio=audio[: frame_samples(k)], START_FRAME=np.array([k])),
            request(21, end=True, frames=video[k:], first=k, audio=audio[frame_samples(k) :]),
        ],
    )
    faces = np.concatenate([o["FACE"] for o in restarted])
    full_faces = np.concatenate([o["FACE"] for o in full])[k:]
    assert not np.array_equal(faces, full_faces)


def test_render_from_tracks_as_the_full_run_whatever_the_requests_cuts(
    model_class, talking_speaker
):
    """Other cuts of the requests: from RENDER_FROM on, the tracking, the mouth's motion, the
    mouths' paths and every output frame are the full run's (FACE, FACE_FOUND, FACE_SCORE,
    MOUTH_OPEN, MOUTH_SOURCE, the pixels with REGION put back into the input frame); only the
    responses' cuts, hence their REGIONs, differ (the library of open mouths holds frames
    0..i for frame i, whatever had arrived: source_mouths.py)."""
    video, n, k = talking_speaker, len(talking_speaker), 23

    def run_as(pieces, render_from=None) -> dict:
        model = model_class()
        model.initialize({"model_config": _config_json()})
        requests = _stream(video, _speech(n), pieces)
        if render_from is not None:
            requests[0].inputs["RENDER_FROM"] = Tensor("RENDER_FROM", np.array([render_from]))
        return run(model, *requests)

    full = run_as([(a, min(a + 10, n), None, None) for a in range(0, n, 10)])
    cuts = [(0, 4, None, None), (4, 20, None, None), (20, 33, None, None), (33, n, None, None)]
    ranged = run_as(cuts, render_from=k)
    assert len(ranged["FRAMES"]) == n - k
    for name in ("FACE", "MOUTH_OPEN", "FACE_FOUND", "FACE_SCORE", "MOUTH_SOURCE"):
        np.testing.assert_array_equal(ranged[name], full[name][k:], err_msg=name)
    assert 2 in ranged["MOUTH_SOURCE"].tolist()  # retrieved mouths among them
    np.testing.assert_array_equal(ranged["FRAMES"], full["FRAMES"][k:])


def test_render_from_past_the_end_sends_no_frames(model, moving_speaker):
    video, n = moving_speaker, len(moving_speaker)
    requests = _stream(video, _speech(n), [(0, 7, None, None), (7, n, None, None)])
    requests[0].inputs["RENDER_FROM"] = Tensor("RENDER_FROM", np.array([n], np.int64))
    assert run(model, *requests) == {}
    assert all(r.sender.errors == [] for r in requests)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"RENDER_FROM": np.array([3]), "START_FRAME": np.array([3])},
            "[INVALID_ARGUMENT] START_FRAME and RENDER_FROM cannot go together",
        ),
        ({"RENDER_FROM": np.array([-1])}, "[INVALID_ARGUMENT] RENDER_FROM must be a frame"),
    ],
)
def test_a_bad_render_from_is_invalid_argument(model, astronaut, inputs, message):
    bad = request(23, start=True, frames=[astronaut], audio=np.zeros(frame_samples(1)), **inputs)
    run(model, bad)
    assert len(bad.sender.errors) == 1 and bad.sender.errors[0].startswith(message)


# --- determinism: the output does not depend on how the requests cut the input ----------------
def _interleaved(video, audio, frames_per_request: int, samples_per_request: int, ahead: int):
    """``video`` and ``audio`` as one stream of requests: the frames ``frames_per_request`` at a
    time, each block sent once the audio sent so far reaches to within ``ahead`` frames of it
    (frames up to ``ahead`` frames before their audio), the audio ``samples_per_request`` at a
    time (a cut anywhere in a frame), in every request while it lasts."""
    n, total, per_frame = len(video), len(audio), SAMPLE_RATE / FPS
    requests, f, s = [], 0, 0
    while f < n or s < total:
        inputs = {}
        if f < n and (f <= s / per_frame + ahead or s >= total):
            b = min(f + frames_per_request, n)
            inputs = dict(frames=video[f:b], first=f)
            f = b
        if s < total:
            inputs["audio"] = audio[s : s + samples_per_request]
            s += samples_per_request
        requests.append(request(24, start=not requests, **inputs))
    requests[-1].inputs["END"] = Tensor("END", np.array([True]))
    return requests


def test_the_output_does_not_depend_on_the_requests_cuts(model_class, talking_speaker):
    """The same talking, moving face cut three ways (the frames one, 7 and 13 to a request,
    the audio a frame, 2999 and 4801 samples at a time, the frames with their audio or 10 or 30
    frames ahead of it): every output frame (REGION put back into the input frame: the regions
    are unions over a response, so they differ with the cuts) and every MOUTH_SOURCE are the
    same. The library of open mouths holds, for frame i, the mouths of frames 0..i alone,
    whatever had arrived (source_mouths.py)."""
    video, n = talking_speaker, len(talking_speaker)
    audio = _speech(n)
    outputs = []
    for cut in ((1, frame_samples(1), 0), (7, 2999, 10), (13, 4801, 30)):
        model = model_class()
        model.initialize({"model_config": _config_json()})
        requests = _interleaved(video, audio, *cut)
        out = run(model, *requests)
        assert all(r.sender.errors == [] for r in requests)
        assert len(out["FRAMES"]) == n
        outputs.append(out)
    first = outputs[0]
    assert set(first["MOUTH_SOURCE"].tolist()) == {1, 2}  # the library is used
    for other in outputs[1:]:
        assert other["SIZES"] != first["SIZES"]  # cut elsewhere
        for name in ("MOUTH_SOURCE", "FACE", "MOUTH_OPEN", "FACE_FOUND", "FACE_SCORE"):
            np.testing.assert_array_equal(other[name], first[name], err_msg=name)
        for k in range(n):
            np.testing.assert_array_equal(other["FRAMES"][k], first["FRAMES"][k], err_msg=k)
    # The model tracks each frame while it draws the one before (FaceTracker.prefetch): the
    # faces and scores are those of a tracker that takes the frames one by one.
    alone = FaceTracker(FaceAnalyzer(), fps=FPS, follower=MeshFollower())
    meshes = [alone.mesh(k, frame) for k, frame in enumerate(video)]
    boxes = [(*m[:, :2].min(0), *m[:, :2].max(0)) for m in meshes]
    np.testing.assert_array_equal(first["FACE"], np.array(boxes, np.float32))
    np.testing.assert_array_equal(
        first["FACE_SCORE"], np.array([alone.score(k) for k in range(n)], np.float32)
    )


# --- FACE_SCORE ----------------------------------------------------------------------------------
def test_the_face_score_is_high_on_a_clear_face_and_falls_as_it_degrades(model, moving_speaker):
    """Near 1 on the clear moving face; far lower on the same frames heavily blurred, or with
    half the face out of the frame; 0 where there is no face."""
    import cv2

    n = len(moving_speaker)
    blank = np.full_like(moving_speaker[0], 90)
    blurred = [cv2.GaussianBlur(f, (0, 0), 3.0) for f in moving_speaker]
    # the head cut by the frame's left edge (x 179..271 of the astronaut at -230)
    half_out = [np.ascontiguousarray(np.roll(f, -430, axis=1)[:, :500]) for f in moving_speaker]
    scores = {}
    for name, video in (("clear", moving_speaker), ("blurred", blurred), ("half out", half_out)):
        frames = [blank[:, : video[0].shape[1]], *video]
        audio = _speech(n + 1)
        out = run(model, *_stream(frames, audio, [(0, 7, None, None), (7, n + 1, None, None)]))
        assert out["FACE_SCORE"].dtype == np.float32 and len(out["FACE_SCORE"]) == n + 1
        assert out["FACE_SCORE"][0] == 0.0 and out["FACE_FOUND"][0] == 0  # no face
        found = out["FACE_FOUND"][1:] == 1
        score = np.where(found, out["FACE_SCORE"][1:], 0.0)
        assert np.all((score >= 0) & (score <= 1))
        assert np.all(out["FACE_SCORE"][1:][~found] == 0.0)
        scores[name] = score
    assert scores["clear"].min() > 0.9, scores["clear"]
    assert scores["blurred"].mean() < 0.5, scores["blurred"]
    assert scores["half out"].mean() < 0.7, scores["half out"]
    assert (scores["blurred"] > 0).mean() > 0.5 and (scores["half out"] > 0).mean() > 0.5


# --- frames as packed I420 (FRAMES_I420) -------------------------------------------------------
def _placed_i420(crops: list[np.ndarray], outputs: list[dict], origin) -> list[np.ndarray]:
    """The I420 answers put back into their input crops, as the server does."""
    from yuv_frames import planes

    frames = []
    for o in outputs:
        assert "FRAMES" not in o  # frames sent in I420 come back in I420 alone
        x0, y0, x1, y1 = o["REGION"].tolist()
        assert x0 % 2 == y0 % 2 == x1 % 2 == y1 % 2 == 0  # whole chroma blocks
        first, pixels = int(o["FIRST_FRAME"][0]), o["FRAMES_I420"]
        assert pixels.shape == (len(o["FACE"]), (y1 - y0) * 3 // 2, x1 - x0)
        for k, region in enumerate(pixels):
            out = crops[first + k].copy()
            lx, ly = x0 - origin[0], y0 - origin[1]
            for target, part, s in zip(planes(out), planes(region), (1, 2, 2), strict=True):
                h, w = part.shape
                target[ly // s : ly // s + h, lx // s : lx // s + w] = part
            frames.append(out)
    return frames


@pytest.mark.parametrize("matrix", [1, 6])
def test_i420_frames_are_answered_in_i420_as_the_rgb_frames_are(
    model_class, moving_speaker, matrix
):
    """The same crops sent as packed I420 (with their colour matrix) come back as I420 regions
    (even edges) whose picture is the one the RGB path gives: the mouth moved the same way, the
    colours the same (Y PSNR >= 35 dB over the face's box), and every sample of a frame the
    model did not change is the input's, bit for bit."""
    from yuv_frames import planes

    origin, (w, h) = (180, 90), (500, 420)  # even: whole chroma blocks
    video = [f[origin[1] : origin[1] + h, origin[0] : origin[0] + w] for f in moving_speaker]
    video[3] = np.full_like(video[3], 90)  # no face in this one: passed through
    crops = [i420_of(f, matrix) for f in video]
    audio = voiced(len(video) / FPS, 0.5)
    got = {}
    for name, frames in (("rgb", [rgb_of(c, matrix) for c in crops]), ("i420", crops)):
        model = model_class()
        model.initialize({"model_config": _config_json()})
        inputs = {"COLOUR_MATRIX": np.array([matrix], np.int32)} if name == "i420" else {}
        sent = request(21, start=True, end=True, audio=audio, origin=origin, **inputs)
        if name == "i420":
            sent.inputs["FRAMES_I420"] = Tensor("FRAMES_I420", np.stack(frames))
        else:
            sent.inputs["FRAMES_IN"] = Tensor("FRAMES_IN", np.stack(frames))
        sent.inputs["SOURCE_INDEX"] = Tensor("SOURCE_INDEX", np.arange(len(frames), dtype=np.int64))
        outputs = _responses(model, [sent])
        if name == "rgb":  # as run() puts RGB answers back, then in I420 as the server does
            frames_out = []
            for o in outputs:
                x0, y0, x1, y1 = (
                    v - d for v, d in zip(o["REGION"].tolist(), origin * 2, strict=True)
                )
                for k, pixels in enumerate(o["FRAMES"]):
                    out = frames[int(o["FIRST_FRAME"][0]) + k].copy()
                    out[y0:y1, x0:x1] = pixels
                    frames_out.append(i420_of(out, matrix))
            got[name] = frames_out
        else:
            got[name] = _placed_i420(crops, outputs, origin)
        got[name + " found"] = np.concatenate([o["FACE_FOUND"] for o in outputs])
    assert got["i420 found"].tolist() == got["rgb found"].tolist()
    assert got["i420 found"][3] == 0 and got["i420 found"].sum() == len(video) - 1
    np.testing.assert_array_equal(got["i420"][3], crops[3])  # untouched, bit for bit
    changed = [not np.array_equal(a, b) for a, b in zip(got["i420"], crops, strict=True)]
    assert sum(changed) >= len(video) - 3  # the mouth re-animated (not the blank frame)
    for a, b in zip(got["i420"], got["rgb"], strict=True):
        ya, yb = planes(a)[0].astype(float), planes(b)[0].astype(float)
        mse = ((ya - yb) ** 2).mean()
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35
        for ca, cb in zip(planes(a)[1:], planes(b)[1:], strict=True):
            assert abs(ca.astype(float).mean() - cb.astype(float).mean()) < 0.5  # no colour cast


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"FRAMES_I420": np.zeros((1, 7, 8), np.uint8)}, "is not packed I420"),
        (
            {"FRAMES_I420": np.zeros((1, 6, 8), np.uint8), "ORIGIN": np.array([1, 0], np.int32)},
            "ORIGIN must be even",
        ),
        (
            {
                "FRAMES_I420": np.zeros((1, 6, 8), np.uint8),
                "COLOUR_MATRIX": np.array([9], np.int32),
            },
            "COLOUR_MATRIX 9",
        ),
        (
            {
                "FRAMES_I420": np.zeros((1, 6, 8), np.uint8),
                "FRAMES_IN": np.zeros((1, 4, 8, 3), np.uint8),
            },
            "not both",
        ),
    ],
)
def test_bad_i420_frames_are_invalid_argument(model, inputs, message):
    bad = request(22, start=True, audio=voiced(0.04, 0.5), **inputs)
    bad.inputs["SOURCE_INDEX"] = Tensor("SOURCE_INDEX", np.zeros(1, np.int64))
    run(model, bad)
    assert len(bad.sender.errors) == 1 and bad.sender.errors[0].startswith("[INVALID_ARGUMENT]")
    assert message in bad.sender.errors[0]
