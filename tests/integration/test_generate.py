"""End to end through the real Triton and the real server: the file a user gets."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from helpers import kinds, render
from media import PORTRAIT, SPEECH, decode_frames, duration, encode, probe

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, pcm_audio


def test_sample_streams_a_playable_fmp4_with_sound(client, tmp_path):
    out = tmp_path / "sample.mp4"
    responses = render(client, SPEECH, out, PORTRAIT, resolution="512x512")
    order = kinds(responses)
    assert order[0] == "accepted" and order[-1] == "summary"
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
    assert chunks[0].kind == pb.CHUNK_KIND_INIT
    assert all(c.kind == pb.CHUNK_KIND_FRAGMENT for c in chunks[1:])
    assert len(chunks) > 10, "video must arrive in many fragments, not one blob"
    # fragments tile the timeline
    for prev, cur in itertools.pairwise(chunks[1:]):
        assert cur.start_seconds == pytest.approx(prev.end_seconds, abs=1e-3)

    info = probe(out)
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["aac", "h264"]
    fps = 25.0
    assert abs(duration(out) - duration(SPEECH)) <= 1 / fps + 1e-3
    frames = decode_frames(out)
    summary = responses[-1].summary
    assert len(frames) == summary.frames == round(duration(SPEECH) * fps)
    assert frames[0].shape == (512, 512, 3)
    # the picture is the portrait, not a blank frame
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    assert np.abs(frames[0].astype(int) - portrait.astype(int)).mean() < 12
    # audio and video start together as a player sees them: the AAC encoder's 1024 priming
    # samples sit before time 0 (hidden by the edit list), so the first audible sample is at 0
    starts = {s["codec_type"]: float(s.get("start_time", 0)) for s in info["streams"]}
    assert abs(starts["audio"] + 1024 / 48000 - starts["video"]) < 0.001


@pytest.mark.parametrize(
    ("aspect", "resolution", "fit", "size"),
    [
        ("16:9", "480p", None, (854, 480)),
        ("9:16", "720p", None, (720, 1280)),
        ("1:1", "480p", None, (480, 480)),
        ("4:3", "480p", "pad", (640, 480)),
        ("3:4", "480p", None, (480, 640)),
        ("source", "480p", None, (480, 480)),
        (None, "320x240", None, (320, 240)),
    ],
)
def test_frame_size_follows_aspect_and_resolution(
    client, short_speech, tmp_path, aspect, resolution, fit, size
):
    out = tmp_path / "sized.mp4"
    responses = render(
        client, short_speech, out, PORTRAIT, aspect=aspect, resolution=resolution, fit=fit
    )
    accepted = responses[0].accepted
    assert (accepted.width, accepted.height) == size
    stream = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == size
    # the face stays inside the frame
    box = accepted.face_box
    assert 0 <= box.x0 < box.x1 <= size[0] and 0 <= box.y0 < box.y1 <= size[1]
    assert abs(duration(out) - duration(short_speech)) <= 1 / 25 + 1e-3


def test_mouth_moves_in_speech_and_rests_in_silence(client, pause_speech, tmp_path):
    out = tmp_path / "pause.mp4"
    # The head (with a face mesh) turns in 3D, mouth included: the mouth's own motion is
    # measured in a fixed window with a still head.
    responses = render(
        client, pause_speech, out, PORTRAIT, resolution="512x512", head_motion_scale=0.0
    )
    box = responses[0].accepted.face_box
    frames = decode_frames(out)
    # Mouth region: lower third of the face box, middle half of its width.
    x0, x1 = int(box.x0 + (box.x1 - box.x0) * 0.2), int(box.x1 - (box.x1 - box.x0) * 0.2)
    y0, y1 = int(box.y0 + (box.y1 - box.y0) * 0.6), int(box.y1 + (box.y1 - box.y0) * 0.15)
    fps = 25
    # Reference: the last frame of the leading silence (frame 0 is the keyframe, whose
    # compression noise differs from the P-frames that follow).
    rest = frames[int(1.0 * fps) - 1][y0:y1, x0:x1].astype(np.float32)
    change = np.array([np.abs(f[y0:y1, x0:x1].astype(np.float32) - rest).mean() for f in frames])
    speech_end = duration(pause_speech) - 1.5
    lead = change[: int(1.0 * fps)]  # silence before the speech
    tail = change[int((speech_end + 0.2) * fps) :]  # silence after it (mouth back at rest)
    speech = change[int(1.3 * fps) : int((speech_end - 0.1) * fps)]
    assert lead.max() < 3.0 and tail.max() < 3.0, "mouth must rest in silence"
    assert speech.max() > 10.0, "mouth must open during speech"
    assert (speech > 5.0).mean() > 0.4, "mouth must move through the speech, not once"
    # open-close cycles, not one plateau
    moving = speech > 5.0
    assert np.count_nonzero(moving[1:] != moving[:-1]) >= 6


@pytest.mark.parametrize(
    ("suffix", "args"),
    [
        (".mp3", ("-c:a", "libmp3lame", "-b:a", "64k")),
        (".m4a", ("-c:a", "aac", "-b:a", "64k")),  # moov at the end of the file
        (".flac", ()),
        (".webm", ("-c:a", "libopus", "-b:a", "32k")),
        (".ogg", ("-c:a", "libvorbis", "-ac", "2", "-ar", "44100")),
    ],
)
def test_audio_formats(client, short_speech, tmp_path, suffix, args):
    src = encode(short_speech, tmp_path / f"in{suffix}", *args)
    out = tmp_path / "fmt.mp4"
    render(client, src, out, PORTRAIT, resolution="256x256")
    assert sorted(s["codec_name"] for s in probe(out)["streams"]) == ["aac", "h264"]
    assert abs(duration(out) - duration(short_speech)) <= 1 / 25 + 0.03


def test_live_pcm_input_and_trim(client, short_speech, tmp_path):
    import wave

    with wave.open(str(short_speech)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    pieces = [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]  # 100 ms pieces
    options = GenerateOptions(resolution="256x256", fps=30, trim_start=0.2, trim_end=1.0)
    responses = list(
        client.generate(audio=pcm_audio(pieces, rate, 1), image=PORTRAIT, options=options)
    )
    out = tmp_path / "pcm.mp4"
    out.write_bytes(b"".join(r.chunk.data for r in responses if r.HasField("chunk")))
    assert responses[-1].summary.frames == round(0.8 * 30)
    assert abs(duration(out) - 0.8) <= 1 / 30 + 0.03
    assert len(decode_frames(out)) == 24


def test_prompt_steers_camera_and_look_and_lists_unused_words(client, short_speech, tmp_path):
    plain = tmp_path / "plain.mp4"
    render(client, short_speech, plain, PORTRAIT, resolution="256x256", seed=7)
    styled = tmp_path / "styled.mp4"
    responses = render(
        client,
        short_speech,
        styled,
        PORTRAIT,
        resolution="256x256",
        seed=7,
        prompt="Black and white, slow zoom in, with a purple dragon",
    )
    assert list(responses[0].accepted.unused_prompt_words) == ["purple", "dragon"]
    a, b = decode_frames(plain), decode_frames(styled)
    assert len(a) == len(b)
    # black and white: no colour left
    assert np.abs(b[5].astype(int) - b[5][..., :1]).max() <= 6
    assert np.abs(a[5].astype(int) - a[5][..., :1]).max() > 40

    # slow zoom in: the last frame shows a smaller part of the picture than the first (edges
    # of the frame move outwards, so the picture near the border differs more at the end)
    def border_change(frames, i):
        gray = frames[i].mean(axis=2)
        ref = frames[0].mean(axis=2)
        return np.abs(gray[:20] - ref[:20]).mean()

    assert border_change(b, len(b) - 1) > border_change(a, len(a) - 1) + 2


def test_the_same_request_renders_the_same_video(client, short_speech, tmp_path):
    """Reproducible from the seed, whether a model instance builds the portrait's warp state
    or reuses it from an earlier call (instances keep a few portraits): the picture is the
    same every time."""
    image = cv2.imread(str(PORTRAIT))
    # a portrait no other test sends: the first call certainly builds its state
    unique = cv2.imencode(".png", cv2.resize(image, (301, 367)))[1].tobytes()
    videos = []
    for i in range(4):
        out = tmp_path / f"run{i}.mp4"
        render(client, short_speech, out, unique, resolution="256x256", seed=5)
        videos.append(decode_frames(out))
    first = np.stack(videos[0]).astype(int)
    assert np.abs(first - first[:1]).max() > 10  # something moves at all
    for other in videos[1:]:
        assert len(other) == len(videos[0])
        assert np.abs(np.stack(other).astype(int) - first).max() <= 2
