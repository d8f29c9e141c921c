"""audio_analysis: what the models hear (kind, voice, phones, visemes, jaw, beats), offline.

analysis.py is tested on audio made here (beat tracks) or with espeak-ng (speech); model.py's
tensor handling through a stand-in for Triton's python backend.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import shared
from analysis import ALL, analyze, parse_parts
from audio_fixtures import speech
from shared import SAMPLE_RATE, InvalidRequest, frame_count

SR = SAMPLE_RATE
MODEL = Path(__file__).resolve().parents[2] / "model_repository" / "audio_analysis"
TEXT = "Hello there. This is a test of the talking avatar. The quick brown fox jumps."


def beat_track(bpm: float, seconds: float = 24.0, first: float = 0.3, bass: bool = False):
    """A kick on every beat (a decaying 55 Hz burst), the first beat of each bar louder and
    with a hi-hat (a noise burst); optionally a bass note under each beat. Returns the audio,
    the beat times and the downbeat times."""
    rng = np.random.default_rng(int(bpm))
    n = int(seconds * SR)
    x = np.zeros(n)
    period = 60.0 / bpm
    beats = np.arange(first, seconds - 0.3, period)
    t = np.arange(int(0.25 * SR)) / SR
    kick = np.sin(2 * np.pi * (55.0 * t + 40.0 * (1 - np.exp(-t / 0.03)) * 0.03)) * np.exp(
        -t / 0.08
    )
    hat = rng.standard_normal(int(0.04 * SR)) * np.exp(-np.arange(int(0.04 * SR)) / (0.01 * SR))
    hat = np.diff(hat, prepend=0.0)  # brighter
    notes = [55.0, 65.4, 73.4, 82.4]
    for i, b in enumerate(beats):
        k = int(round(b * SR))
        accent = i % 4 == 0
        seg = kick[: n - k] * (0.8 if accent else 0.45)
        x[k : k + seg.size] += seg
        if accent:
            h = hat[: n - k] * 0.25
            x[k : k + h.size] += h
        if bass:
            m = min(int(period * SR), n - k)
            tb = np.arange(m) / SR
            ramp = np.minimum(1.0, np.minimum(tb / 0.01, tb[::-1] / 0.05))  # no clicks
            x[k : k + m] += 0.12 * np.sin(2 * np.pi * notes[(i // 4) % 4] * tb) * ramp
    return x.astype(np.float32), beats, beats[::4]


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> np.ndarray:
    """espeak-ng speech with 1 s of silence before and after."""
    return speech(tmp_path_factory.mktemp("talk"), TEXT, lead=1.0, tail=1.0)


# --- beats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bpm, bass", [(96, False), (120, True), (128, False), (128, True)])
def test_beat_track_tempo_beats_and_downbeats(bpm, bass):
    x, beats, downbeats = beat_track(bpm, bass=bass)
    res = analyze(x, parts=("beats",))
    assert set(res) == {
        "duration",
        "tempo",
        "beats",
        "downbeats",
        "beats_per_bar",
        "beat_confidence",
        "onsets",
    }
    assert abs(res["tempo"] - bpm) < 1.0, res["tempo"]
    got = np.array(res["beats"])
    err = np.abs(got[:, None] - beats[None, :]).min(1)
    assert err.max() < 0.040, err.max()
    found = np.abs(beats[:, None] - got[None, :]).min(1) < 0.040
    assert found.mean() >= 0.9
    assert res["beat_confidence"] > 0.4
    assert res["beats_per_bar"] == 4
    down = np.array(res["downbeats"])
    assert len(down) >= 0.9 * len(downbeats)
    assert np.abs(down[:, None] - downbeats[None, :]).min(1).max() < 0.040
    onsets = np.array(res["onsets"])
    assert np.all(np.abs(beats[:, None] - onsets[None, :]).min(1) < 0.040)  # one at every kick
    assert np.all(np.diff(onsets) >= 0.05 - 1e-9)


def test_speech_has_no_steady_beat(talk):
    res = analyze(talk, parts=("beats",))
    assert res["tempo"] == 0.0 or res["beat_confidence"] < 0.3
    assert res["onsets"]  # syllables


# --- speech --------------------------------------------------------------------------------
def test_speech_analysis(talk):
    duration = len(talk) / SR
    res = analyze(talk, fps=30.0)
    assert set(res) == {
        "duration",
        "kind",
        "segments",
        "voiced",
        "aligned",
        "phones",
        "visemes",
        "jaw",
        "tempo",
        "beats",
        "downbeats",
        "beats_per_bar",
        "beat_confidence",
        "onsets",
    }
    assert res["duration"] == pytest.approx(duration, abs=1e-3)
    assert res["kind"] == "speech"
    # voiced ranges: inside the speech, not in the leading / trailing second of silence
    voiced = np.array(res["voiced"])
    assert len(voiced) and voiced[0, 0] >= 0.9 and voiced[-1, 1] <= duration - 0.9
    assert (voiced[:, 1] - voiced[:, 0]).sum() > 0.6 * (duration - 2.0)
    # phones in the speech
    phones = res["phones"]
    assert len(phones) > 20 and res["aligned"] is False
    assert all(
        p["phone"].isalpha() and p["phone"].isupper() and p["phone"] != "SIL" for p in phones
    )
    assert phones[0]["start"] >= 0.8 and phones[-1]["end"] <= duration - 0.8
    # visemes: contiguous spans over the whole clip, REST in the silences
    vis = res["visemes"]
    assert vis[0]["start"] == 0.0 and vis[-1]["end"] == pytest.approx(duration, abs=1e-3)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(vis))
    assert all(a["viseme"] != b["viseme"] for a, b in itertools.pairwise(vis))
    assert vis[0]["viseme"] == 1 and vis[-1]["viseme"] == 1
    assert {v["viseme"] for v in vis} >= {1, 2, 3}  # rest, closed (m/b/p), open
    # jaw: one value per frame at FPS, shut in the silences, open in the speech
    jaw = res["jaw"]
    assert jaw["rate"] == 30.0 and len(jaw["values"]) == frame_count(len(talk), 30.0)
    values = np.array(jaw["values"])
    assert values[:25].max() < 0.05 and values[-25:].max() < 0.05
    assert values.max() > 0.5
    # segments: speech over the clip (silence at the edges may be other)
    segs = res["segments"]
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(duration, abs=1e-3)
    assert "speech" in {s["kind"] for s in segs}


def test_phone_search_lm_is_the_phone_lms_unigrams():
    """The allphone search reads the shipped unigram LM: every en-us phone, probabilities
    (log10) that sum to 1, nothing of a higher order."""
    import analysis

    text = Path(analysis._PHONE_LM).read_text()
    assert "ngram 1=43" in text and "ngram 2" not in text and "\\2-grams" not in text
    rows = text.split("\\1-grams:")[1].split("\\end\\")[0].split()
    probs = dict(zip(rows[1::2], map(float, rows[0::2]), strict=True))
    phones = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T"
    phones += " TH UH UW V W Y Z ZH SIL"
    assert set(phones.split()) <= set(probs)
    assert sum(10.0**v for v in probs.values()) == pytest.approx(1.0, abs=1e-3)


def test_transcript_aligns_the_phones(talk):
    res = analyze(talk, transcript=TEXT, parts=("phones",))
    assert res["aligned"] is True
    phones = [p["phone"] for p in res["phones"]]
    assert phones[:4] == ["HH", "AH", "L", "OW"]  # "hello" in cmudict
    # the transcript's phones, in its order (the grammar's path; see analysis.py on drift)
    expected = iter(
        [
            "HH",
            "AH",
            "L",
            "OW",
            "DH",
            "EH",
            "R",
            "DH",
            "IH",
            "S",
            "IH",
            "Z",
            "AH",
            "T",
            "EH",
            "S",
            "T",
            "AH",
            "V",
            "DH",
            "AH",
            "T",
            "AO",
            "K",
            "IH",
            "NG",
        ]
    )
    assert len(phones) >= 10 and all(p in expected for p in phones)


def test_speech_then_music_segments(talk):
    music, _, _ = beat_track(120.0, seconds=20.0)
    x = np.concatenate((talk, 0.8 * music))
    switch = len(talk) / SR
    res = analyze(x, parts=("kind",))
    segs = res["segments"]
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segs))
    kinds = [s["kind"] for s in segs]
    assert "speech" in kinds and kinds[-1] == "music"
    first_music = next(s for s in segs if s["kind"] == "music")
    assert kinds.index("speech") < kinds.index("music")
    assert abs(first_music["start"] - switch) <= 1.5, (segs, switch)
    assert res["kind"] in ("speech", "music")


def test_music_is_music():
    x, _, _ = beat_track(120.0, bass=True)
    res = analyze(x, parts=("kind", "voice"))
    assert res["kind"] == "music"
    assert [s["kind"] for s in res["segments"]] == ["music"]
    assert sum(b - a for a, b in res["voiced"]) < 2.0


# --- requests ------------------------------------------------------------------------------
@pytest.mark.parametrize("parts", [("beats",), ("jaw",), ("voice", "kind"), ("phones",)])
def test_parts_give_only_their_keys(parts):
    x, _, _ = beat_track(120.0, seconds=4.0)
    keys = {
        "kind": {"kind", "segments"},
        "voice": {"voiced"},
        "phones": {"aligned", "phones", "visemes"},
        "jaw": {"jaw"},
        "beats": {"tempo", "beats", "downbeats", "beats_per_bar", "beat_confidence", "onsets"},
    }
    res = analyze(x, parts=parts)
    assert set(res) == {"duration"}.union(*(keys[p] for p in parts))


def test_parse_parts():
    assert parse_parts(None) == ALL and parse_parts(" ") == ALL
    assert parse_parts("beats, kind") == ("kind", "beats")
    with pytest.raises(InvalidRequest):
        parse_parts("beats,tempo")


def test_empty_audio():
    res = analyze(np.zeros(0, np.float32))
    assert res["duration"] == 0.0
    assert res["segments"] == [] and res["voiced"] == [] and res["phones"] == []
    assert res["visemes"] == [] and res["jaw"]["values"] == [] and res["beats"] == []
    assert res["onsets"] == [] and res["tempo"] == 0.0
    json.dumps(res)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(samples=np.array([0.0, np.nan], np.float32)),
        dict(samples=np.array([np.inf], np.float32)),
        dict(samples=None),
        dict(fps=0.5),
        dict(fps=61.0),
        dict(fps=float("nan")),
        dict(parts=("beats", "lyrics")),
        dict(transcript="a" * 100_001),
    ],
)
def test_bad_input_is_an_invalid_request(kwargs):
    args = dict(
        samples=np.zeros(SR, np.float32), **{k: v for k, v in kwargs.items() if k != "samples"}
    )
    if "samples" in kwargs:
        args["samples"] = kwargs["samples"]
    with pytest.raises(InvalidRequest):
        analyze(**args)


# --- model.py through a stand-in for Triton's python backend --------------------------------
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


class Request:
    def __init__(self, **inputs) -> None:
        self.inputs = {name: Tensor(name, value) for name, value in inputs.items()}


PB_UTILS = types.SimpleNamespace(
    Tensor=Tensor,
    TritonError=TritonError,
    InferenceResponse=InferenceResponse,
    TritonModelException=RuntimeError,
    get_input_tensor_by_name=lambda request, name: request.inputs.get(name),
)


@pytest.fixture(scope="module")
def model():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "triton_python_backend_utils", PB_UTILS)
        mp.setattr(shared, "pb_utils", PB_UTILS)
        spec = importlib.util.spec_from_file_location("analysis_model", MODEL / "1" / "model.py")
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        instance = module.TritonPythonModel()
        instance.initialize({"model_config": "{}"})
        yield instance


def _strings(text: str) -> np.ndarray:
    return np.array([text.encode()], dtype=object)


def test_model_answers_each_request(model):
    x, _, _ = beat_track(120.0, seconds=8.0)
    good = Request(AUDIO=x, FPS=np.array([30.0], np.float32), PARTS=_strings("beats,jaw"))
    plain = Request(AUDIO=np.zeros(SR // 2, np.float32))
    (a, b) = model.execute([good, plain])
    assert a.error is None and b.error is None
    res = json.loads(a.outputs["ANALYSIS"].ravel()[0].decode())
    assert set(res) >= {"tempo", "jaw"} and "kind" not in res
    assert res["jaw"]["rate"] == 30.0 and len(res["jaw"]["values"]) == frame_count(len(x), 30.0)
    assert abs(res["tempo"] - 120.0) < 1.0
    assert set(json.loads(b.outputs["ANALYSIS"].ravel()[0].decode())) >= {"kind", "phones"}


@pytest.mark.parametrize(
    "inputs",
    [
        dict(),
        dict(AUDIO=np.array([np.nan], np.float32)),
        dict(AUDIO=np.zeros(10, np.float32), FPS=np.array([0.0], np.float32)),
        dict(AUDIO=np.zeros(10, np.float32), PARTS=_strings("beats,nope")),
        dict(AUDIO=np.zeros(10, np.float32), TRANSCRIPT=_strings("a" * 100_001)),
    ],
)
def test_model_tags_bad_requests_invalid_argument(model, inputs):
    (response,) = model.execute([Request(**inputs)])
    assert response.error is not None
    assert response.error.message().startswith("[INVALID_ARGUMENT] ")
