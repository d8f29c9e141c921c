"""Animation options from the client side: the timeline side output, blinks, head motion,
visemes and a transcript, on the real model."""

from __future__ import annotations

import itertools

from media import PORTRAIT, speech_wav

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, file_audio


def _timeline(client, audio, **options) -> tuple[list, pb.Summary]:
    responses = list(
        client.generate(
            audio=file_audio(audio),
            image=PORTRAIT,
            options=GenerateOptions(resolution="256x256", include_timeline=True, seed=3, **options),
        )
    )
    frames = [f for r in responses if r.HasField("timeline") for f in r.timeline.frames]
    return frames, responses[-1].summary


def test_timeline_visemes_blinks_and_head_motion(client, pause_speech):
    frames, summary = _timeline(client, pause_speech, blink_rate=60.0)
    assert [f.index for f in frames] == list(range(summary.frames))
    visemes = {f.viseme for f in frames}
    assert pb.VISEME_REST in visemes and pb.VISEME_OPEN in visemes | {pb.VISEME_WIDE}
    assert len(visemes - {pb.VISEME_REST}) >= 3, "speech uses several mouth shapes"
    blinks = sum(1 for a, b in itertools.pairwise(frames) if a.blink < 0.5 <= b.blink)
    assert blinks >= 2, "60 blinks a minute over several seconds"
    assert max(abs(f.head_yaw) + abs(f.head_pitch) for f in frames) > 0.2
    assert summary.audio_kind == pb.AUDIO_KIND_SPEECH

    still, _ = _timeline(client, pause_speech, blink_rate=0.0, head_motion_scale=0.0)
    assert all(f.blink == 0 for f in still)
    assert all(f.head_yaw == f.head_pitch == f.head_roll == 0 for f in still)


def test_transcript_is_accepted_and_shapes_the_mouth(client, media_dir):
    text = "mama papa, bob made maps."
    audio = speech_wav(media_dir / "bilabials.wav", text, lead=0.5, tail=0.5)
    frames, summary = _timeline(client, audio, transcript=text)
    assert len(frames) == summary.frames
    closed = sum(f.viseme == pb.VISEME_CLOSED for f in frames)
    assert closed >= 4, "the lips close on the aligned m, p and b"
    assert max(f.mouth_open for f in frames) > 0.3
