"""Tests of a2v_server.media.encoder: a streamed fMP4 that players decode in sync."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.fmp4 import Segment

RATE = 48000
SIZE = 128


def _signal(seconds: float) -> np.ndarray:
    """440 Hz tone plus a chirp: tonal, yet with a unique cross-correlation peak."""
    t = np.arange(int(seconds * RATE)) / RATE
    chirp = np.sin(2 * np.pi * (200 * t + 600 * t**2))
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * chirp).astype(np.float32)


def _frame(index: int) -> np.ndarray:
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[:, : SIZE // 2] = (255, 0, 0)
    rgb[:, SIZE // 2 :] = (0, 0, 255)
    rgb[index % 8, :] = 255  # a little motion so frames differ
    return rgb


@dataclass
class Encoded:
    path: Path
    segments: list[Segment]
    before_close: int  # segments returned before close()
    audio: np.ndarray
    frames: int


def _encode(tmp_path: Path, fps, frames: int, seconds: float, name: str) -> Encoded:
    audio = _signal(seconds)
    encoder = FragmentedMp4Encoder(SIZE, SIZE, fps, 1, fragment_seconds=0.2)
    segments: list[Segment] = []
    step = RATE // 10
    fed = 0
    for i in range(frames):
        # audio arrives ahead of the video, in 100 ms pieces, like the render pipeline's
        while fed < len(audio) and fed < (i / float(Fraction(fps)) + 0.5) * RATE:
            segments += encoder.add_audio(audio[None, fed : fed + step])
            fed += step
        segments += encoder.add_video(_frame(i))
    if fed < len(audio):
        segments += encoder.add_audio(audio[None, fed:])
    before_close = len(segments)
    segments += encoder.close()
    assert encoder.close() == []  # idempotent
    path = tmp_path / name
    path.write_bytes(b"".join(s.data for s in segments))
    return Encoded(path, segments, before_close, audio, frames)


@pytest.fixture(scope="module")
def clip25(tmp_path_factory) -> Encoded:
    return _encode(tmp_path_factory.mktemp("enc"), 25, 75, 3.0, "clip25.mp4")


def _ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _check_streams(clip: Encoded, duration: float) -> dict[str, dict]:
    info = _ffprobe(clip.path, "-count_frames", "-show_streams", "-show_format")
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    video, audio = streams["video"], streams["audio"]
    assert int(video["nb_read_frames"]) == clip.frames
    assert float(video["duration"]) == pytest.approx(duration, abs=0.04)
    assert float(audio["start_time"]) + float(audio["duration"]) == pytest.approx(3.0, abs=0.04)
    assert video["profile"] == "High" and video["pix_fmt"] == "yuv420p"
    return streams


def test_streams_frames_and_duration(clip25):
    streams = _check_streams(clip25, 3.0)
    assert streams["video"]["r_frame_rate"] == "25/1"


def test_ntsc_rate(tmp_path):
    clip = _encode(tmp_path, Fraction(30000, 1001), 90, 3.0, "clip2997.mp4")
    streams = _check_streams(clip, 90 * 1001 / 30000)
    assert streams["video"]["r_frame_rate"] == "30000/1001"


def test_audio_priming_does_not_shift_video(clip25):
    """ffprobe: video starts at 0; audio starts one AAC priming frame earlier, and the
    edit list hides exactly that frame, so the first audible sample plays at 0."""
    streams = _ffprobe(clip25.path, "-show_streams")["streams"]
    start = {s["codec_type"]: float(s["start_time"]) for s in streams}
    assert start["video"] == pytest.approx(0.0, abs=0.001)
    assert start["audio"] + 1024 / RATE == pytest.approx(start["video"], abs=0.001)


def test_segments_are_streamable(clip25):
    segments = clip25.segments
    assert segments[0].kind == "init"
    assert segments[0].data[4:8] == b"ftyp" and b"moof" not in segments[0].data
    fragments = segments[1:]
    assert all(s.kind == "fragment" and s.data[4:8] in (b"moof", b"styp") for s in fragments)
    assert clip25.before_close >= 2, "no fragment was emitted before close()"
    previous = 0.0
    for fragment in fragments:
        assert fragment.start_seconds == pytest.approx(previous, abs=1e-6)
        assert fragment.end_seconds >= fragment.start_seconds
        previous = fragment.end_seconds
    assert previous == pytest.approx(3.0, abs=1e-6)
    durations = [s.end_seconds - s.start_seconds for s in fragments]
    assert max(durations) <= 0.2 + 1e-6  # fragment_seconds is honoured


@pytest.mark.parametrize("fps", [12.5, 25, 30, 60, Fraction(30000, 1001)])
def test_the_first_frame_leaves_at_once(fps):
    """The init segment and a fragment with the first frame come out of the first frame's
    call, when its audio is there: a client sees the clip start one frame sooner."""
    encoder = FragmentedMp4Encoder(SIZE, SIZE, fps, 1, fragment_seconds=0.2)
    assert encoder.add_audio(_signal(1.0)[None]) == []
    first = encoder.add_video(_frame(0))
    assert [s.kind for s in first] == ["init", "fragment"]
    assert first[1].start_seconds == 0.0
    assert first[1].end_seconds == pytest.approx(1 / float(fps))
    encoder.abort()


def test_decoded_colours(clip25):
    with av.open(str(clip25.path)) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 40)
        rgb = frame.to_ndarray(format="rgb24").astype(int)
    assert np.abs(rgb[SIZE // 2, 10 : SIZE // 2 - 10] - (255, 0, 0)).max() < 25
    assert np.abs(rgb[SIZE // 2, SIZE // 2 + 10 : -10] - (0, 0, 255)).max() < 25


def test_decoded_audio_matches_input(clip25):
    with av.open(str(clip25.path)) as container:
        frames = list(container.decode(audio=0))
    assert frames[0].pts == 0  # priming removed by the decoder: audio starts with the video
    decoded = np.concatenate([f.to_ndarray()[0] for f in frames])
    reference = clip25.audio
    assert abs(len(decoded) - len(reference)) <= 1024
    # the lag that best aligns input and output must be ~0 (A/V sync), and the match good
    n = len(reference)
    window = slice(RATE // 2, n - RATE // 2)
    lags = range(-96, 97)
    scores = [
        float(np.dot(reference[window], decoded[window.start + k : window.stop + k])) for k in lags
    ]
    best = lags[int(np.argmax(scores))]
    assert abs(best) <= RATE // 1000  # within 1 ms
    corr = np.corrcoef(reference[window], decoded[window.start + best : window.stop + best])[0, 1]
    assert corr > 0.95


def test_invalid_arguments():
    assert FragmentedMp4Encoder(64, 64, 25, 1).close() == []  # nothing encoded: nothing written
    with pytest.raises(ValueError):
        FragmentedMp4Encoder(65, 64, 25, 1)
    encoder = FragmentedMp4Encoder(64, 64, 25, 2)
    with pytest.raises(ValueError):
        encoder.add_video(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError):
        encoder.add_audio(np.zeros((1, 100), np.float32))
    encoder.close()
    with pytest.raises(RuntimeError):
        encoder.add_video(np.zeros((64, 64, 3), np.uint8))


def test_converting_only_the_changed_region_gives_the_same_video():
    """``changed`` is an optimisation only: the file must be byte for byte the one that
    converting every whole frame gives, for regions with odd edges and at the frame's borders."""
    rng = np.random.default_rng(7)
    w, h = 96, 64
    base = np.repeat(np.repeat(rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8), 8, 0), 8, 1)
    regions = [(13, 9, 51, 41), (0, 0, 17, 23), (71, 37, 96, 64), (1, 1, 2, 2)]
    for _ in range(25):  # and random ones, odd edges included
        x0, x1 = sorted(rng.choice(w + 1, 2, replace=False))
        y0, y1 = sorted(rng.choice(h + 1, 2, replace=False))
        regions.append((x0, y0, x1, y1))
    regions.append((0, 0, w, h))
    canvas = base.copy()
    frames, changed = [], []
    for x0, y0, x1, y1 in regions:
        # 4x4-pixel blocks of one random colour each (4:2:0 keeps them, unlike pixel noise)
        blocks = rng.integers(0, 256, ((y1 - y0 + 3) // 4, (x1 - x0 + 3) // 4, 3), np.uint8)
        canvas[y0:y1, x0:x1] = np.repeat(np.repeat(blocks, 4, 0), 4, 1)[: y1 - y0, : x1 - x0]
        frames.append(canvas.copy())
        changed.append((x0, y0, x1, y1))

    def encode(with_regions: bool, primed: bool = False) -> bytes:
        encoder = FragmentedMp4Encoder(w, h, 25, 1)
        if primed:  # the picture before the first change, converted ahead (the portrait)
            encoder.prime(base)
        out = []
        for frame, region in zip(frames, changed, strict=True):
            out += encoder.add_video(frame, region if with_regions else None)
        out += encoder.close()
        return b"".join(s.data for s in out)

    whole, partial = encode(False), encode(True)
    assert encode(True, primed=True) == whole
    decoded = [f.to_ndarray(format="rgb24") for f in av.open(io.BytesIO(partial)).decode(video=0)]
    assert len(decoded) == len(frames)

    # the last frame (a whole-frame region) really is in the output: far closer to it than to
    # the frame before (lossy 4:2:0 at CRF 20 keeps colour blocks only approximately)
    def error(a, b):
        return np.abs(a.astype(int) - b).mean()

    assert error(decoded[-1], frames[-1]) < 0.5 * error(decoded[-1], frames[-2])
    assert partial == whole


def _moving(index: int, size: int = 192) -> np.ndarray:
    """A textured picture that moves a little every frame (so P-frames have work to do)."""
    y, x = np.mgrid[0:size, 0:size]
    shift = 3 * np.sin(index / 4)
    base = 128 + 60 * np.sin((x + shift) / 9) * np.cos((y - shift) / 13) + 30 * np.sin(x * y / 900)
    return np.repeat(np.clip(base, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _video_packets(segments: list[Segment]) -> list[tuple[float, bytes]]:
    data = b"".join(s.data for s in segments)
    with av.open(io.BytesIO(data)) as c:
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(video=0) if p.size]


def _decoded(segments: list[Segment]) -> list[np.ndarray]:
    with av.open(io.BytesIO(b"".join(s.data for s in segments))) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_a_range_encodes_to_the_same_gops_as_the_whole_clip():
    """A range that starts on a keyframe (start_frame) decodes to the whole clip's pictures, bit
    for bit, at the whole clip's timestamps (the constant QP keeps no state from one GOP to the
    next), and its audio starts at its first frame's time."""

    def encode(first: int, count: int) -> list[Segment]:
        enc = FragmentedMp4Encoder(192, 192, 25, 1, start_frame=first)
        out = enc.add_audio(_signal(count / 25)[None, :])
        for i in range(first, first + count):
            out += enc.add_video(_moving(i))
        return out + enc.close()

    whole_segments, part_segments = encode(0, 75), encode(25, 50)
    whole, part = _video_packets(whole_segments), _video_packets(part_segments)
    assert [t for t, _ in part] == pytest.approx([t for t, _ in whole[25:]])
    # the same pictures, bit for bit (the packets differ in slice header fields such as the
    # IDR's id, which alternates from one IDR to the next)
    decoded = [_decoded(s) for s in (whole_segments, part_segments)]
    assert all(np.array_equal(a, b) for a, b in zip(decoded[0][25:], decoded[1], strict=True))
    data = b"".join(s.data for s in encode(50, 10))
    with av.open(io.BytesIO(data)) as c:
        audio = [f.time for f in c.decode(audio=0)]
    assert audio[1] == pytest.approx(2.0, abs=0.001)  # (audio[0]: the AAC priming, before)


class _FreshPictures(FragmentedMp4Encoder):
    """The encoder as it was: a new picture for every frame."""

    def _encode_i420(self, i420: np.ndarray) -> list[Segment]:
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = self._first_frame + self._frames
        self._frames += 1
        self._container.mux(self._video.encode(frame))
        self._encode_audio(limit=self._frames / self.fps + self._lead)
        return self._sink.take()


def test_one_picture_for_every_frame_gives_the_same_stream():
    """The encoder writes each frame into one kept picture (no frame-sized buffer per frame):
    the bytes are those of a fresh picture per frame, and every frame keeps its own content,
    patched (``staged``) or not."""
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (96 * 3 // 2, 160), dtype=np.uint8) for _ in range(30)]
    outputs = []
    for kind in (FragmentedMp4Encoder, _FreshPictures):
        encoder = kind(160, 96, 25, 1, preset="superfast", qp=16)
        encoder.add_audio(np.zeros((1, RATE), np.float32))
        data = []
        for k, frame in enumerate(frames):
            if k % 3 == 0:  # a patched copy, as lipsync pastes a mouth
                frame = encoder.staged(frame) if kind is FragmentedMp4Encoder else frame.copy()
                frame[10:20, 10:20] = k
            data += encoder.add_i420(frame)
        data += encoder.close()
        outputs.append(b"".join(s.data for s in data))
    assert outputs[0] == outputs[1]
    with av.open(io.BytesIO(outputs[0])) as container:
        decoded = [f.to_ndarray() for f in container.decode(video=0)]
    assert len(decoded) == 30
    assert all(
        int(d[10:20, 10:20].mean().round()) in range(k - 3, k + 4)
        for k, d in enumerate(decoded)
        if k % 3 == 0
    )
