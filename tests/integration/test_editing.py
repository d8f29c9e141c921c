"""Editing features through the real Triton, from the client side: Analyze on speech and on a
beat track, the timeline's beat grid, re-rendering a range (the same frames as the full
render), and the per-fragment report flagging a span where the face leaves the picture."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from helpers import a2v_command
from media import PORTRAIT
from test_lipsync import _psnr

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, file_audio
from bench.inputs import drum_loop, group_picture

BPM = 126.0


@pytest.fixture(scope="module")
def beat_track(media_dir) -> tuple[Path, np.ndarray]:
    path = media_dir / "beat.wav"
    return path, drum_loop(path, bpm=BPM)


def test_analyze_hears_speech(client, pause_speech):
    a = client.analyze(audio=file_audio(pause_speech), fps=30)
    assert a.kind == pb.AUDIO_KIND_SPEECH
    assert 5.0 < a.duration_seconds < 7.0
    # 1.2 s of silence, the sentence, 1.5 s of silence
    assert a.voiced and 1.0 < a.voiced[0].start_seconds < 1.5
    assert a.duration_seconds - 2.0 < a.voiced[-1].end_seconds < a.duration_seconds - 1.2
    assert len(a.phones) > 15 and a.phones[0].start_seconds > 1.0
    assert a.visemes[0].start_seconds == 0 and a.visemes[0].viseme == pb.VISEME_REST
    assert a.visemes[-1].end_seconds == pytest.approx(a.duration_seconds, abs=0.01)
    assert a.jaw_fps == 30 and len(a.jaw_open) == round(a.duration_seconds * 30)
    jaw = np.array(a.jaw_open)
    assert jaw[:30].max() < 0.05 and jaw[45:-60].max() > 0.4  # shut in silence, open in speech
    assert a.beat_grid.tempo_bpm == 0 and not a.beat_grid.beats
    assert 0 < a.analysis_seconds < a.duration_seconds  # (the speed is measured in bench/)


def test_analyze_finds_the_beat_and_the_cli_writes_it(stack, beat_track, tmp_path):
    path, truth = beat_track
    out = tmp_path / "analysis.json"
    done = subprocess.run(
        a2v_command(stack.address, "analyze", "--audio", str(path), "-o", str(out)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "BPM" in done.stderr
    a = json.loads(out.read_text())
    assert a["kind"] == "music"
    assert a["tempo_bpm"] == pytest.approx(BPM, abs=1.0)
    beats = np.array(a["beats"])
    # every true beat found within 40 ms (the first bar may be missed while the tracker locks)
    found = [np.abs(beats - b).min() <= 0.040 for b in truth]
    assert np.mean(found) >= 0.9 and all(found[4:]), np.abs(beats[:, None] - truth).min(0)
    assert all(np.abs(truth - b).min() <= 0.040 for b in beats)  # and nothing else
    downbeats = np.array(a["downbeats"])
    assert len(downbeats) >= 3 and all(np.abs(truth[::4] - d).min() <= 0.040 for d in downbeats)
    assert len(a["onsets"]) >= len(truth)


def test_the_timeline_carries_the_same_beat_grid(client, beat_track):
    path, _ = beat_track
    analysis = client.analyze(audio=file_audio(path))
    responses = list(
        client.generate(
            audio=file_audio(path),
            image=PORTRAIT,
            options=GenerateOptions(resolution="256x256", include_timeline=True, range=(0, 1)),
        )
    )
    grids = [r.timeline.beat_grid for r in responses if r.timeline.HasField("beat_grid")]
    assert len(grids) == 1
    assert grids[0].tempo_bpm == pytest.approx(analysis.beat_grid.tempo_bpm)
    assert list(grids[0].beats) == pytest.approx(list(analysis.beat_grid.beats))
    assert list(grids[0].downbeats) == pytest.approx(list(analysis.beat_grid.downbeats))


def _decoded(data: bytes) -> list[tuple[float, np.ndarray]]:
    with av.open(io.BytesIO(data)) as c:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def _chunks(responses) -> bytes:
    return b"".join(r.chunk.data for r in responses if r.HasField("chunk"))


def test_an_avatar_range_is_the_full_renders_part(client, pause_speech):
    options = {"resolution": "320x320", "seed": 7}
    full = _decoded(
        _chunks(
            client.generate(
                audio=file_audio(pause_speech),
                image=PORTRAIT,
                options=GenerateOptions(**options),
            )
        )
    )
    responses = list(
        client.generate(
            audio=file_audio(pause_speech),
            image=PORTRAIT,
            options=GenerateOptions(**options, range=(1.6, 2.9)),
        )
    )
    accepted = responses[0].accepted
    assert (accepted.range.start_seconds, accepted.range.end_seconds) == (1.0, 3.0)
    part = _decoded(_chunks(responses))
    assert len(part) == 50
    for k, (t, frame) in enumerate(part):
        t_full, full_frame = full[25 + k]
        assert t == pytest.approx(t_full)
        assert _psnr(frame, full_frame) >= 45, k


def _speaker_video(away: tuple[int, int] | None = None, seconds: float = 3.0) -> bytes:
    """The portrait at 25 fps on a plain background, drifting; with ``away`` = (a, b) it slides
    out of the picture over the 8 frames before a and back in over the 8 frames from b."""
    portrait = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    frames = []
    for k in range(round(seconds * 25)):
        dx = 6 * np.sin(k / 12)
        if away is not None:
            a, b = away
            gone = min(max((k - (a - 8)) / 8, 0), 1) * min(max((b + 8 - k) / 8, 0), 1)
            dx -= 560 * gone
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        frames.append(
            cv2.warpAffine(
                portrait, m, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 110, 120)
            )
        )
    return _mp4(frames, crf=16)


def _mp4(frames: list[np.ndarray], crf: int) -> bytes:
    """An MP4 of RGB frames at 25 fps."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": str(crf)})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _lipsync(client, video: bytes, audio: Path, **options) -> list[pb.GenerateResponse]:
    config = GenerateOptions(model="lipsync", **options).to_proto()

    def requests():
        yield pb.GenerateRequest(config=config)
        yield pb.GenerateRequest(video=pb.VideoInput(data=video))
        for chunk in file_audio(audio):
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    return list(client._stub.Generate(requests()))


def test_a_lipsync_range_is_the_full_renders_part(client, pause_speech):
    video = _speaker_video()
    full = _decoded(_chunks(_lipsync(client, video, pause_speech)))
    responses = _lipsync(client, video, pause_speech, range=(2.2, 3.5))
    part = _decoded(_chunks(responses))
    assert (responses[0].accepted.range.start_seconds, len(part)) == (2.0, 50)
    for k, (t, frame) in enumerate(part):
        t_full, full_frame = full[50 + k]
        assert t == pytest.approx(t_full)
        assert _psnr(frame, full_frame) >= 45, k


def test_the_report_flags_the_span_without_a_face(client, pause_speech, tmp_path):
    """The face slides out of the picture and is gone from frames 30-54 (1.2-2.2 s)."""
    video = _speaker_video((30, 55), seconds=4.0)
    responses = _lipsync(client, video, pause_speech, sync_mode="cut_off")
    fragments = [r.chunk for r in responses if r.HasField("chunk") and r.chunk.sequence_number]
    assert all(c.HasField("report") for c in fragments)
    gone = [c for c in fragments if c.start_seconds >= 1.2 - 1e-6 and c.end_seconds <= 2.2 + 1e-6]
    # (sliding out from 0.88 s, back in until 2.52 s)
    there = [c for c in fragments if c.end_seconds <= 0.88 + 1e-6 or c.start_seconds >= 2.52]
    assert gone and there
    assert all(c.report.face_share == 0 and c.report.tracking_confidence == 0 for c in gone)
    assert all(c.report.face_share == 1 for c in there)
    assert np.mean([c.report.tracking_confidence for c in there]) > 0.7
    lost = [c for c in fragments if c.report.face_lost]
    assert len(lost) == 1 and 0.9 <= lost[0].start_seconds <= 1.2, [
        (c.start_seconds, c.report) for c in fragments
    ]
    assert not any(c.report.cut or c.report.looped for c in fragments), [
        (c.start_seconds, c.report.cut, c.report.looped) for c in fragments
    ]  # one shot, played once


def test_faces_in_a_group_picture_and_a_video(stack, client, tmp_path):
    picture = tmp_path / "two.png"
    cv2.imwrite(str(picture), cv2.cvtColor(group_picture(), cv2.COLOR_RGB2BGR))
    found = client.list_faces(image=picture)
    assert [f.index for f in found.faces] == [0, 1]
    assert found.faces[0].box.x1 < 512 < found.faces[1].box.x0  # the larger, left one first
    # A video: the left person alone for 2 s, then the other one comes in.
    frames = []
    for k in range(100):
        frame = group_picture()
        if k < 50:
            frame[:, 512:] = 90
        frames.append(frame)
    video = tmp_path / "two.mp4"
    video.write_bytes(_mp4(frames, crf=18))
    done = subprocess.run(
        a2v_command(stack.address, "faces", "--video", str(video)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("0\tbox ") and lines[1].startswith("1\tbox ")
    found = client.list_faces(video=video)
    assert found.duration_seconds == pytest.approx(4.0) and found.frames_scanned == 9
    first, second = found.faces  # looked at every 12 frames: 0.48 s
    assert first.first_seconds == 0 and first.visible_seconds == pytest.approx(4.0)
    assert second.first_seconds == pytest.approx(2.0, abs=0.5)
    assert second.visible_seconds == pytest.approx(2.0, abs=0.5)
    assert second.box.x0 > 512
    # Accepted lists the portrait's faces too, in its pixels
    responses = client.generate(
        audio=file_audio(Path(__file__).parents[2] / "samples" / "speech.ogg"),
        image=picture,
        options=GenerateOptions(resolution="480p", range=(0, 1)),
    )
    accepted = next(responses).accepted
    responses.close()
    assert [f.index for f in accepted.faces] == [0, 1]
    assert accepted.faces[1].box.x0 == pytest.approx(found.faces[1].box.x0, abs=2)


def _mouth(frame: np.ndarray, box: pb.Box) -> np.ndarray:
    """The lower middle of a face's box: where its mouth is."""
    w, h = box.x1 - box.x0, box.y1 - box.y0
    x0, x1 = int(box.x0 + 0.25 * w), int(box.x1 - 0.25 * w)
    y0, y1 = int(box.y0 + 0.6 * h), int(box.y1)
    return frame[y0:y1, x0:x1].astype(np.float64)


def _motion(frames: list[np.ndarray], box: pb.Box, span: range) -> float:
    """How much a face's mouth changes from frame to frame over ``span`` (mean abs diff)."""
    mouths = [_mouth(frames[k], box) for k in span]
    return float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(mouths)]))


def _look(frames: list[np.ndarray], faces, name: str) -> None:
    """With A2V_LOOK=DIR: a contact sheet of every face's mouth over the clip, to look at."""
    folder = os.environ.get("A2V_LOOK")
    if not folder:
        return
    n = len(frames)
    sheet = np.concatenate(
        [
            np.concatenate([cv2.resize(_mouth(frames[k], f.box), (96, 64)) for f in faces], 1)
            for k in range(5, n - 5, max(1, (n - 10) // 10))
        ]
    )
    path = os.path.join(folder, f"{name}.png")
    cv2.imwrite(path, cv2.cvtColor(sheet.astype(np.uint8), cv2.COLOR_RGB2BGR))


def test_a_group_portrait_with_two_speakers(client, media_dir, tmp_path):
    """Face 1 speaks the first sentence, face 0 the second; the one who does not speak keeps
    its mouth still (blinks aside: the head is held still here to measure it)."""
    picture = tmp_path / "two.png"
    cv2.imwrite(str(picture), cv2.cvtColor(group_picture(), cv2.COLOR_RGB2BGR))
    from media import speech_wav

    audio = speech_wav(
        media_dir / "dialogue.wav",
        "Where were you yesterday? I was at the market, buying apples and bread.",
        lead=0.3,
        tail=0.3,
    )
    seconds = float(av.open(str(audio)).duration) / 1e6
    half = round(seconds / 2, 2)
    responses = list(
        client.generate(
            audio=file_audio(audio),
            image=picture,
            options=GenerateOptions(
                resolution="source",
                head_motion_scale=0.0,
                speakers=[(0.0, half, 1), (half, 0.0, 0)],
            ),
        )
    )
    faces = responses[0].accepted.faces
    frames = [f for _, f in _decoded(_chunks(responses))]
    n = len(frames)
    first, second = range(8, int(half * 25) - 3), range(int(half * 25) + 3, n - 10)
    speaking = [_motion(frames, faces[1].box, first), _motion(frames, faces[0].box, second)]
    idle = [_motion(frames, faces[0].box, first), _motion(frames, faces[1].box, second)]
    assert min(speaking) > 4 * max(idle), (speaking, idle)
    _look(frames, faces, "group")


def test_lipsync_with_two_people_reanimates_only_the_one_speaking(client, pause_speech):
    """Face 1 (right) speaks from 1.2 s on; face 0 never: its pixels are the video's, and face
    1's are too before its turn."""
    frames = [group_picture() for _ in range(75)]
    for k, frame in enumerate(frames):  # a little drift, as a camera would
        m = np.float32([[1, 0, 3 * np.sin(k / 10)], [0, 1, 0]])
        frames[k] = cv2.warpAffine(frame, m, (960, 512), borderMode=cv2.BORDER_REFLECT)
    video = _mp4(frames, crf=14)
    source = [f for _, f in _decoded(video)]
    responses = _lipsync(
        client,
        video,
        pause_speech,
        sync_mode="cut_off",
        speakers=[(1.2, 0.0, 1)],
    )
    faces = responses[0].accepted.faces
    assert len(faces) == 2
    output = [f for _, f in _decoded(_chunks(responses))]
    assert len(output) == len(source) == 75
    _look(output, faces, "two-people-lipsync")

    def psnr(k: int, face: int) -> float:
        return _psnr(_mouth(output[k], faces[face].box), _mouth(source[k], faces[face].box))

    assert min(psnr(k, 0) for k in range(75)) >= 38  # never named: the video's own mouth
    assert min(psnr(k, 1) for k in range(0, 28)) >= 38  # before its turn too
    changed = [psnr(k, 1) < 30 for k in range(32, 75)]  # speaking: its mouth is redrawn
    assert np.mean(changed) > 0.5, [round(psnr(k, 1), 1) for k in range(32, 75)]


def test_a_stereo_dialogue_routed_by_channel(client, media_dir, tmp_path):
    """Left channel: one voice, then silence; right channel: silence, then another voice."""
    from media import run, speech_wav

    a = speech_wav(media_dir / "a.wav", "Are you coming tonight?", lead=0.3, tail=2.6)
    b = speech_wav(media_dir / "b.wav", "Yes, I will be there.", voice="en-gb", lead=2.6, tail=0.3)
    stereo = tmp_path / "dialogue.wav"
    # both the same length (the longer one's), then one per channel
    length = max(float(av.open(str(p)).duration) / 1e6 for p in (a, b))
    pads = []
    for p in (a, b):
        padded = tmp_path / f"pad-{p.name}"
        run("sox", str(p), str(padded), "pad", "0", "2", "trim", "0", f"{length:.3f}")
        pads.append(str(padded))
    run("sox", "-M", *pads, str(stereo))
    picture = tmp_path / "two.png"
    cv2.imwrite(str(picture), cv2.cvtColor(group_picture(), cv2.COLOR_RGB2BGR))
    responses = list(
        client.generate(
            audio=file_audio(stereo),
            image=picture,
            options=GenerateOptions(
                resolution="source", head_motion_scale=0.0, channel_speakers={0: 0, 1: 1}
            ),
        )
    )
    faces = responses[0].accepted.faces
    frames = [f for _, f in _decoded(_chunks(responses))]
    _look(frames, faces, "stereo-dialogue")
    first, second = range(10, 55), range(70, len(frames) - 10)
    # face 0 follows the left channel, face 1 the right one
    assert _motion(frames, faces[0].box, first) > 4 * _motion(frames, faces[1].box, first)
    assert _motion(frames, faces[1].box, second) > 4 * _motion(frames, faces[0].box, second)
