"""The quality report that every fragment carries (MediaChunk.report), from the client side:
face share and tracking confidence, sync agreement, and the lost-face, cut and loop flags."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
from fake_backend import fake_mouth_source
from media import portrait_png

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, pcm_audio

RATE = 16000


def _pcm(seconds: float, amplitude: float) -> list[bytes]:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (amplitude * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    return [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]


def _fragments(responses) -> list[pb.MediaChunk]:
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert chunks[0].kind == pb.CHUNK_KIND_INIT and not chunks[0].HasField("report")
    return chunks[1:]


async def _avatar(client, amplitude: float) -> list[pb.MediaChunk]:
    responses = [
        r
        async for r in client.generate(
            audio=pcm_audio(_pcm(2.0, amplitude), RATE, 1),
            image=portrait_png(),
            options=GenerateOptions(resolution="256x256"),
        )
    ]
    return _fragments(responses)


async def test_avatar_fragments_report_the_portraits_face_and_the_sync(client):
    """The fake avatar never opens the mouth: in silence mouth and voice agree everywhere, on
    a loud tone nowhere."""
    quiet = await _avatar(client, 0.0)
    assert sum(c.report.frames for c in quiet) == 50
    for c in quiet:
        assert c.report.face_share == 1 and c.report.tracking_confidence == pytest.approx(1.0)
        assert c.report.sync_agreement == 1
        assert not (c.report.face_lost or c.report.cut or c.report.looped)
    loud = await _avatar(client, 0.5)
    assert all(c.report.sync_agreement == 0 for c in loud)


def _video(levels: list[int] | list[np.ndarray]) -> bytes:
    """A 10 fps 160x120 clip whose frame k is a flat grey of levels[k], or that picture."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for level in levels:
            img = (
                level if isinstance(level, np.ndarray) else np.full((120, 160, 3), level, np.uint8)
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


async def _lipsync(client, video: bytes, seconds: float) -> list[pb.MediaChunk]:
    options = GenerateOptions(model="lipsync", resolution="160x120")
    audio = pcm_audio(_pcm(seconds, 0.3), RATE, 1)

    async def requests():
        yield pb.GenerateRequest(config=options.to_proto())
        yield pb.GenerateRequest(video=pb.VideoInput(data=video))
        for chunk in audio:
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    return _fragments([r async for r in client._stub.Generate(requests())])


async def test_lipsync_fragments_flag_lost_faces_cuts_and_loops(client):
    """12 source frames with a cut after the 6th, bounced over 3 s at 10 fps; the fake tracks
    no face in every 5th output frame (fake_mouth_source)."""
    fragments = await _lipsync(client, _video([40 + 2 * k for k in range(6)] + [200] * 6), 3.0)
    frames, at = [], 0
    for c in fragments:  # the output frames of each fragment, by time
        n = round((c.end_seconds - c.start_seconds) * 10)
        assert c.report.frames == n
        frames.append(range(at, at + n))
        at += n
    assert at == 30
    for c, span in zip(fragments, frames, strict=True):
        found = fake_mouth_source(np.array(span)) > 0
        assert c.report.face_share == pytest.approx(found.mean())
        assert c.report.tracking_confidence == pytest.approx(0.9 * found.mean(), abs=1e-6)
        # a face in the frame before (maybe the last fragment's), none in this one
        had = [i > 0 and fake_mouth_source(np.array([i - 1]))[0] > 0 for i in span]
        assert c.report.face_lost == any(h and not f for h, f in zip(had, found, strict=True))
        # the cut: source frame 5 -> 6, at output frames 6 and 28 (forward again after the
        # bounce; backwards over it, at 17, the picture does not run as recorded: no cut)
        assert c.report.cut == (6 in span or 28 in span), span
        # the bounce plays the source backwards from output frame 12 (source 10) to 22 (0)
        assert c.report.looped == any(12 <= i <= 22 for i in span), span


def _panning(picture: np.ndarray, frames: int, step: int) -> list[np.ndarray]:
    """A 160x120 view panning across ``picture`` (squeezed to 240x120) by ``step`` px a
    frame."""
    wide = cv2.resize(np.ascontiguousarray(picture), (240, 120), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(wide[:, k * step : k * step + 160]) for k in range(frames)]


async def test_a_cut_to_a_shot_of_similar_tones_is_flagged_and_a_fast_pan_is_not(client):
    """A fast pan across the astronaut (7 px a frame: 1.4 of the cut detector's samples), then
    a cut to a pan across skimage's coffee cup, whose histogram is much like hers (they share
    0.69 of it): only the fragment with the cut says so."""
    from skimage import data

    clip = _panning(data.astronaut(), 10, 7) + _panning(data.coffee(), 10, 7)
    fragments = await _lipsync(client, _video(clip), 2.0)
    at = 0
    for c in fragments:
        span = range(at, at + c.report.frames)
        at += c.report.frames
        assert c.report.cut == (10 in span), span
    assert at == 20
