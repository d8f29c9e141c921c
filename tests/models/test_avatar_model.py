"""talking_avatar/1/model.py run without Triton, through the stand-in for
``triton_python_backend_utils`` that test_lipsync_model.py defines: how a sequence's frames
are split into responses, and the per-portrait state an instance keeps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import shared
from face_mesh import FaceAnalyzer
from google.protobuf import json_format, text_format
from skimage import data
from test_lipsync_model import FINAL, PB_UTILS, Request, Tensor, voiced
from tritonclient.grpc import model_config_pb2

AVATAR = Path(__file__).resolve().parents[2] / "model_repository" / "talking_avatar"
FPS = 25.0


@pytest.fixture(scope="module")
def avatar():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "triton_python_backend_utils", PB_UTILS)
        mp.setattr(shared, "pb_utils", PB_UTILS)
        spec = importlib.util.spec_from_file_location("avatar_model", AVATAR / "1" / "model.py")
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(scope="module")
def config() -> dict:
    """config.pbtxt as Triton hands it to initialize()."""
    text = (AVATAR / "config.pbtxt").read_text()
    parsed = text_format.Parse(text, model_config_pb2.ModelConfig())
    return {"model_config": json_format.MessageToJson(parsed, preserving_proto_field_name=True)}


@pytest.fixture
def model(avatar, config):
    instance = avatar.TritonPythonModel()
    instance.initialize(config)
    return instance


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The astronaut, her 68 landmarks and her face mesh."""
    image = np.ascontiguousarray(data.astronaut())
    (face,) = FaceAnalyzer().analyze(image)
    return image, face.landmarks, face.mesh


def start(corrid: int, portrait, audio: np.ndarray, *, end: bool = False) -> Request:
    image, landmarks, mesh = portrait
    return Request(
        CORRID=np.array([corrid], np.uint64),
        START=np.array([True]),
        END=np.array([end]),
        AUDIO=audio,
        PORTRAIT=image,
        LANDMARKS=landmarks,
        MESH=mesh,
        FPS=np.array([FPS], np.float32),
    )


def responses(model, *requests: Request) -> list[dict]:
    """Execute the requests in turn; each must be closed with FINAL once. Their responses'
    outputs, in order."""
    out = []
    for r in requests:
        model.execute([r])
        flags = [f for _, f in r.sender.sent]
        assert flags and flags[-1] == FINAL and flags.count(FINAL) == 1
        assert not r.sender.errors
        out += [resp.outputs for resp in r.sender.responses if resp.outputs]
    return out


def test_the_first_frames_go_out_one_per_response(model, avatar, portrait):
    """The encoder's first fragment needs two frames: they leave one by one, as soon as each
    is drawn; then responses of up to max_frames_per_response frames."""
    image = portrait[0]
    out = responses(model, start(1, portrait, voiced(1.0, 0.5), end=True))
    sizes = [len(o["FRAMES"]) for o in out]
    assert sizes[: avatar.FIRST_FRAMES] == [1] * avatar.FIRST_FRAMES
    assert all(1 <= n <= model._max_frames for n in sizes)
    assert sum(sizes) == round(1.0 * FPS)  # the last request flushes the lookahead
    firsts = [int(o["FIRST_FRAME"][0]) for o in out]
    assert firsts == list(np.cumsum([0, *sizes[:-1]]))
    x0, y0, x1, y1 = out[0]["REGION"].tolist()
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    for o in out:
        assert o["FRAMES"].shape == (len(o["FRAMES"]), y1 - y0, x1 - x0, 3)
        assert all(len(o[name]) == len(o["FRAMES"]) for name in ("MOUTH_OPEN", "BLINK"))


def test_a_portrait_seen_again_reuses_its_state_and_a_changed_one_does_not(model, portrait):
    """The state is kept per portrait: the same pixels and landmarks find it again; other
    pixels with the same landmarks (a colour-graded copy of one photo) get their own."""
    image, landmarks, mesh = portrait
    first = model._portrait_state(image, landmarks, mesh)
    assert model._portrait_state(image.copy(), landmarks, mesh) == first
    graded = image.copy()
    graded[::2] //= 2
    other = model._portrait_state(graded, landmarks, mesh)
    assert other[0] is not first[0] and other[1] is not first[1]
    assert np.array_equal(other[0].render(0.0), graded)  # drawn from the new pixels
    assert model._portrait_state(graded, landmarks, mesh) == other


def test_a_sequence_reopened_at_a_later_frame_gives_the_same_frames_from_there(model, portrait):
    """Failover: START_FRAME=k with the audio from the start again (in other pieces) gives
    frames k, k+1, ... bit for bit as the sequence run from the start gave them."""
    audio = voiced(2.0, 0.5)
    whole = responses(model, start(1, portrait, audio, end=True))
    frames = np.concatenate([o["FRAMES"] for o in whole])
    k = 17
    first = start(2, portrait, audio[:12000])
    first.inputs["START_FRAME"] = Tensor("START_FRAME", np.array([k], np.int64))
    rest = Request(
        CORRID=np.array([2], np.uint64),
        START=np.array([False]),
        END=np.array([True]),
        AUDIO=audio[12000:],
    )
    again = responses(model, first, rest)
    assert int(again[0]["FIRST_FRAME"][0]) == k
    np.testing.assert_array_equal(np.concatenate([o["FRAMES"] for o in again]), frames[k:])
    for name in ("MOUTH_OPEN", "BLINK", "HEAD_POSE"):
        np.testing.assert_array_equal(
            np.concatenate([o[name] for o in again]),
            np.concatenate([o[name] for o in whole])[k:],
            err_msg=name,
        )
