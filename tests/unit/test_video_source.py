"""Tests of the streaming speaker-video decoder (media/spool.py, media/video.py): frames come
out while the upload is still arriving (faststart MP4, fragmented MP4, WebM), a moov-at-end MP4
waits for its last byte, every slot reached by seeking (loop, bounce, remap) is the same picture
as in the first pass, memory is bounded by the cache, and a variable-frame-rate video keeps
its timing."""

from __future__ import annotations

import io
import math
import random
import tempfile
import threading
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from media import hdr_mp4, rgb_of

from a2v_server.errors import InvalidInput
from a2v_server.media import hdr
from a2v_server.media.spool import Spool
from a2v_server.media.video import SourceVideo

SIDE = 64


def _picture(k: int) -> np.ndarray:
    """Frame k: its number written in the grey level of the left half, noise on the right (so
    every frame takes about as many bytes: half the upload is about half the frames)."""
    rgb = np.zeros((SIDE, SIDE, 3), np.uint8)
    rgb[:, : SIDE // 2] = (k * 7) % 256
    noise = np.random.default_rng(k).integers(0, 256, (SIDE, SIDE // 2, 3), dtype=np.uint8)
    rgb[:, SIDE // 2 :] = noise
    return rgb


def _clip(frames: int, *, fmt: str = "mp4", movflags: str = "", fps: int = 25, gop: int = 12):
    # a named file: +faststart rewrites it, moving the index to the front
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as out:
        _write(out.name, frames, fmt, movflags, fps, gop)
        return open(out.name, "rb").read()


def _write(path: str, frames: int, fmt: str, movflags: str, fps: int, gop: int) -> None:
    options = {"movflags": movflags} if movflags else {}
    with av.open(path, "w", format=fmt, options=options) as container:
        codec = "libvpx" if fmt == "webm" else "libx264"
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(k), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _length(video: SourceVideo) -> int:
    """Slots until the first missing one: the video's length as decoding finds it."""
    count = 0
    while video.frame(count) is not None:
        count += 1
    return count


def _level(picture) -> int:
    """The grey level of a decoded picture's left half (from its limited-range luma)."""
    if picture.i420 is None:
        return int(np.median(picture.rgb[:, : SIDE // 2, 0]))
    return round((np.median(picture.i420[:SIDE, : SIDE // 2]) - 16) * 255 / 219)


def _opened(data: bytes, *, fraction: float = 1.0, **kwargs):
    spool = Spool(max_bytes=10**8)
    spool.write(data[: int(len(data) * fraction)])
    if fraction >= 1.0:
        spool.finish()
    video = SourceVideo(spool, max_pixels=10**6, max_frames=10_000, **kwargs)
    return spool, video


@pytest.mark.parametrize(
    ("fmt", "movflags"),
    [("mp4", "+faststart"), ("mp4", "frag_keyframe+empty_moov+default_base_moof"), ("webm", "")],
    ids=["faststart-mp4", "fragmented-mp4", "webm"],
)
def test_frames_are_decoded_before_the_upload_is_complete(fmt, movflags):
    data = _clip(100, fmt=fmt, movflags=movflags)
    spool, video = _opened(data, fraction=0.5)
    try:
        info = video.open()  # the upload is half here and not finished: this must not wait
        assert (info.width, info.height, info.rate) == (SIDE, SIDE, Fraction(25))
        assert not spool.complete
        assert video.frame(10) is not None and video.length is None
        spool.write(data[len(data) // 2 :])
        spool.finish()
        count = _length(video)
        assert count == video.length == 100
    finally:
        video.close()
        spool.close()


def test_an_mp4_with_its_index_at_the_end_is_decoded_once_complete():
    data = _clip(50)  # PyAV's muxer writes moov after mdat
    assert data.index(b"mdat") < data.index(b"moov")
    spool, video = _opened(data, fraction=0.9)
    done = threading.Event()
    opened: list = []

    def open_it():
        opened.append(video.open())
        done.set()

    worker = threading.Thread(target=open_it, daemon=True)
    worker.start()
    try:
        assert not done.wait(1.0)  # nothing decodable before the index
        spool.write(data[int(len(data) * 0.9) :])
        spool.finish()
        assert done.wait(30.0)
        assert opened[0].width == SIDE and _level(video.frame(0)) == 0
        assert _level(video.frame(49)) == (49 * 7) % 256
    finally:
        worker.join(30.0)
        video.close()
        spool.close()


def test_an_aborted_upload_stops_a_waiting_decoder():
    data = _clip(50, movflags="+faststart")
    spool, video = _opened(data, fraction=0.3)
    failures: list = []

    def read_on():
        try:
            video.open()
            k = 0
            while video.frame(k) is not None:
                k += 1
        except Exception as exc:
            failures.append(exc)

    worker = threading.Thread(target=read_on, daemon=True)
    worker.start()
    worker.join(0.5)
    assert worker.is_alive()  # waiting for bytes that do not come
    spool.abort()
    worker.join(10.0)
    assert not worker.is_alive() and failures
    video.close()
    spool.close()


def test_every_slot_reached_by_seeking_is_the_first_pass_picture():
    """A cache of four frames: bounce (backward play), loop (back to the start) and random
    jumps all re-decode from keyframes in the compressed upload; every picture is bit for bit
    the one the first pass decoded."""
    frames = 120
    data = _clip(frames, movflags="+faststart", gop=30)
    spool, video = _opened(data, cache_bytes=4 * SIDE * SIDE * 3 // 2)
    try:
        video.open()
        first = []
        while (picture := video.frame(len(first))) is not None:
            first.append(picture.i420.copy())
        assert len(first) == frames and video.length == frames
        order = list(range(frames - 1, -1, -1)) + list(range(frames))  # bounce, then loop
        rng = random.Random(7)
        order += [rng.randrange(frames) for _ in range(60)]
        for slot in order:
            assert np.array_equal(video.frame(slot).i420, first[slot]), slot
        assert video.seeks > 3
        # memory: the cache holds at most its budget of pictures
        assert video._cache_bytes <= 4 * SIDE * SIDE * 3 // 2
        # backward play costs a bounded number of decodes: under a GOP per frame
        assert video.decoded < frames + len(order) * 30
        assert video.frame(frames) is None
        assert video.count_slots() == frames
    finally:
        video.close()
        spool.close()


def test_the_slot_count_from_packets_matches_the_decoded_length():
    data = _clip(77, movflags="+faststart")
    spool, video = _opened(data)
    try:
        video.open()
        assert video.count_slots() == 77  # from timestamps, before the first pass ended
        assert video.length is None

        def demux_again():
            raise AssertionError("the upload was demuxed again")

        video._seeking = demux_again  # remap asks once per frame: the count is kept
        assert video.count_slots() == 77
    finally:
        video.close()
        spool.close()


def test_a_variable_frame_rate_video_keeps_its_timing():
    """Frames at irregular times (a phone's VFR): slot k at the average rate shows the last
    frame whose time is before (k + 1/2) / rate, so what is seen at a time stays at that time."""
    times = [0.0, 0.04, 0.08, 0.20, 0.24, 0.50, 0.54, 0.58, 0.62, 0.66, 1.00]
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"bf": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(_picture(k), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    spool, video = _opened(out.getvalue())
    try:
        info = video.open()
        rate = float(info.rate)
        k = 0
        while (picture := video.frame(k)) is not None:
            shown = max(j for j, t in enumerate(times) if t < (k + 0.5) / rate or j == 0)
            assert abs(_level(picture) - (shown * 7) % 256) <= 2, (k, shown, _level(picture))
            k += 1
        assert abs(k / rate - times[-1]) <= 1.5 / rate  # the duration is kept too
    finally:
        video.close()
        spool.close()


@pytest.mark.parametrize("kept", [0.3, 0.5, 0.77, "packet"])
def test_a_video_whose_data_ends_early_says_where(kept):
    """An upload cut off (or corrupt) partway, in a packet or at its end (which decodes
    cleanly): the pictures before the cut are decoded and the video is that long; ``damage``
    (Summary.warnings) says where its data ended against the duration its header declares. A
    whole file has none."""
    data = _clip(100, movflags="+faststart")  # 4.00 s at 25 fps
    if kept == "packet":
        with av.open(io.BytesIO(data)) as container:
            ends = [p.pos + p.size for p in container.demux(video=0) if p.size]
        cut = ends[60]
    else:
        cut = int(len(data) * kept)
    spool, video = _opened(data[:cut])
    try:
        video.open()
        count = _length(video)
        assert 10 < count < 100
        assert video.damage is not None
        assert video.damage.startswith(f"video: its data ends at {count / 25:.2f} s")
        assert "of the 4.00 s its header declares" in video.damage
    finally:
        video.close()
        spool.close()
    spool, video = _opened(data)
    try:
        video.open()
        count = _length(video)
        assert count == video.length == 100 and video.damage is None
    finally:
        video.close()
        spool.close()


@pytest.mark.parametrize(
    ("fmt", "movflags"),
    [("webm", ""), ("mp4", "frag_keyframe+empty_moov+default_base_moof")],
    ids=["webm", "fragmented-mp4"],
)
def test_a_cut_off_webm_or_fragmented_mp4_says_so_too(fmt, movflags):
    """A WebM (one duration for the file) and a fragmented MP4 (none declared up front) cut
    at 60 %: the damage is reported where it can be known, the length they reached."""
    data = _clip(100, fmt=fmt, movflags=movflags)
    spool, video = _opened(data[: int(len(data) * 0.6)])
    try:
        video.open()
        count = _length(video)
        assert 10 < count < 100
        assert video.damage is not None
        assert video.damage.startswith(f"video: its data ends at {count / 25:.2f} s")
    finally:
        video.close()
        spool.close()


@pytest.mark.parametrize(("fps", "rate", "step"), [(120, 60, 2), (240, 60, 4), (100, 50, 2)])
def test_a_video_above_60_fps_plays_every_nth_picture(fps, rate, step):
    """A phone's high-frame-rate video (120, 240 fps) is not refused: the clip plays at its
    rate divided by the smallest whole number that brings it within 60 fps, each slot the
    picture shown at its time (every step-th, evenly spaced), and says so (source_rate)."""
    data = _clip(8 * step, fps=fps, gop=step * 4, movflags="+faststart")
    spool, video = _opened(data)
    try:
        info = video.open()
        assert info.rate == Fraction(rate) and info.source_rate == Fraction(fps)
        levels = []
        while (picture := video.frame(len(levels))) is not None:
            levels.append(_level(picture))
        # slot k: the last picture before (k + 1/2) / rate, picture (k + 1/2) * step - 1 (the
        # last picture gets a slot of its own, as in any video: one more at most)
        shown = [math.ceil((k + 0.5) * step) - 1 for k in range(8)]
        assert levels[:8] == [(j * 7) % 256 for j in shown] and len(levels) <= 9
    finally:
        video.close()
        spool.close()


def test_a_video_below_1_fps_is_refused_with_a_fix():
    spool, video = _opened(_clip(3, fps=Fraction(1, 2), movflags="+faststart"))
    try:
        with pytest.raises(InvalidInput, match=r"below 1 fps.*re-encode it at 1\.\.60 fps"):
            video.open()
    finally:
        video.close()
        spool.close()


def _colour_picture() -> np.ndarray:
    """A 96x64 SDR picture with skin, sky, grass and greys (what an HDR conversion can get
    wrong: brightness, saturation)."""
    rgb = np.zeros((64, 96, 3), np.uint8)
    colours = [(224, 172, 140), (90, 140, 220), (70, 150, 60), (30, 30, 30), (128, 128, 128)]
    for i, colour in enumerate(colours):
        rgb[:, i * 19 : (i + 1) * 19] = colour
    rgb[32:, :] = np.linspace(16, 235, 96, dtype=np.uint8)[None, :, None]
    return rgb


@pytest.mark.parametrize(("transfer", "kind"), [("arib-std-b67", "HLG"), ("smpte2084", "PQ")])
def test_an_hdr_video_comes_out_as_an_sdr_screen_shows_it(transfer, kind):
    """A phone's HLG video (or an HDR10 one, PQ) is converted to SDR BT.709 as a screen shows
    it: its pictures are the SDR original's colours within a few levels (the saturated green
    10 levels: the round trip through BT.2020 maps its gamut), the greys within 4. Read as if
    it were SDR (the BT.2020 matrix alone, as before), the skin was 55 (HLG) and 90 (PQ)
    levels off, the greys dark (HLG) or flat (PQ)."""
    picture = _colour_picture()
    spool, video = _opened(hdr_mp4([picture] * 4, transfer))
    try:
        info = video.open()
        # kept as I420 under BT.709 from here on, as an SDR upload's samples are
        assert info.hdr == kind and info.colour is not None
        assert info.colour.matrix_number == 1 and info.colour.tags == (1, 1, 1)
        for slot in range(3):
            got = rgb_of(video.frame(slot).i420).astype(int)
            assert got.shape == picture.shape
            # the colour patches' middles (away from the chroma's edges)
            for i in range(5):
                patch = np.s_[4:28, i * 19 + 4 : i * 19 + 15]
                difference = np.abs(got[patch].mean((0, 1)) - picture[patch].mean((0, 1)))
                assert difference.max() < 12, (i, got[patch].mean((0, 1)), picture[patch][0, 0])
            grey = np.abs(got[40:60, 8:88].mean((0, 2)) - picture[40:60, 8:88].mean((0, 2)))
            assert np.median(grey) < 4
    finally:
        video.close()
        spool.close()


def test_an_hdr_videos_conversion_is_set_up_while_its_first_picture_decodes(monkeypatch):
    """Opening an HLG video starts setting up its chroma-grid conversion from the stream's
    headers, before the first picture is decoded (a thread of its own: its filter graphs
    took ~80 ms after that picture). The pictures are the same, bit for bit, as those of a
    conversion set up once the first picture is out; an SDR video starts nothing. (Each
    video here is the first of its kind: the grid a closed video leaves in the pool, which a
    later one takes instead, is test_hdr's.)"""
    data = hdr_mp4([_colour_picture()] * 4, "arib-std-b67")

    def pictures() -> tuple[list[np.ndarray], object]:
        monkeypatch.setattr(hdr, "_POOL", hdr._GridPool())
        spool, video = _opened(data)
        try:
            video.open()  # (decodes and converts the first picture)
            return [video.frame(slot).i420.copy() for slot in range(3)], video._to_sdr._grid
        finally:
            video.close()
            spool.close()

    made, _ = pictures()
    started = []
    original = hdr.ToSdr.prepare

    def prepare(self, stream):
        original(self, stream)
        started.append(self._ahead)

    monkeypatch.setattr(hdr.ToSdr, "prepare", prepare)
    prepared, grid = pictures()
    assert started[0] is not None and started[0]._grid is grid  # set up ahead, then taken
    monkeypatch.setattr(hdr.ToSdr, "prepare", lambda self, stream: None)
    after, _ = pictures()
    for a, b, c in zip(made, prepared, after, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)

    monkeypatch.setattr(hdr.ToSdr, "prepare", prepare)
    started.clear()
    spool, video = _opened(_clip(4))
    try:
        video.open()
        assert started == [None]  # SDR: nothing to set up
    finally:
        video.close()
        spool.close()


def test_an_sdr_video_is_not_colour_managed():
    """SDR BT.709 video (and untagged video) keeps its own samples: nothing to convert."""
    spool, video = _opened(_clip(4))
    try:
        info = video.open()
        assert info.hdr is None and info.colour is not None
        assert video.frame(0).i420 is not None
    finally:
        video.close()
        spool.close()


def _scaled_reference(data: bytes, size: tuple[int, int]) -> list[np.ndarray]:
    """Every picture of ``data`` decoded at its full size, then area-scaled to ``size``."""
    with av.open(io.BytesIO(data)) as container:
        return [
            f.reformat(*size, interpolation="AREA").to_ndarray()  # packed I420
            for f in container.decode(video=0)
        ]


def test_a_video_decoded_at_a_smaller_size_comes_out_scaled_in_every_path():
    """``decode_at`` (a source larger than its output): every picture comes out at the new
    size, the area-scaled source's samples: the ones decoded before it (the face probe's and
    the one the decoding pass looked ahead to), those decoded after, and those reached again
    by seeking backwards (bounce); the cache then holds 4x as many of them."""
    frames = 40
    data = _clip(frames, gop=8)
    reference = _scaled_reference(data, (SIDE // 2, SIDE // 2))
    spool, video = _opened(data, cache_bytes=6 * SIDE * SIDE * 3 // 2)  # 6 full-size pictures
    try:
        info = video.open()
        assert (info.width, info.height) == (SIDE, SIDE)
        assert video.frame(0).i420.shape == (SIDE * 3 // 2, SIDE)  # the probe's, full size
        info = video.decode_at(SIDE // 2, SIDE // 2)
        assert (info.width, info.height) == (SIDE // 2, SIDE // 2)
        slots = [*range(frames), *range(frames - 2, -1, -1)]  # forwards, then back (bounce)
        for n, slot in enumerate(slots):
            picture = video.frame(slot)
            assert picture.i420.shape == (SIDE * 3 // 4, SIDE // 2), slot
            difference = np.abs(picture.i420.astype(int) - reference[slot])
            if n < 2:
                # decoded before the size changed (the probe's and the look-ahead picture),
                # scaled from their samples: the same filter, but the decoder's chroma
                # siting is lost with the frame (chroma a few levels off on this noise)
                assert difference[: SIDE // 2].max() <= 1 and difference.mean() < 0.5, slot
            else:
                assert difference.max() <= 1, slot
        # 24 quarter-size pictures fit where 6 full-size ones did: the way back seeks less
        assert video.seeks <= 3
    finally:
        video.close()
        spool.close()


def test_an_hdr_video_decoded_at_a_smaller_size_is_converted_after_scaling():
    """An HLG video decoded at half its size: converted to SDR on the smaller picture, the
    same colours as the full-size conversion scaled down."""
    picture = _colour_picture()
    data = hdr_mp4([picture] * 4, "arib-std-b67")
    full_spool, full = _opened(data)
    spool, video = _opened(data)
    try:
        full.open()
        video.open()
        info = video.decode_at(48, 32)
        assert (info.width, info.height, info.hdr) == (48, 32, "HLG")
        for slot in range(3):
            got = rgb_of(video.frame(slot).i420).astype(float)
            expected = rgb_of(full.frame(slot).i420)
            expected = cv2.resize(expected, (48, 32), interpolation=cv2.INTER_AREA)
            assert got.shape == (32, 48, 3)
            # the colour patches' middles (their edges differ with the order of scaling and
            # the LUT, which is not linear) and the grey ramp
            for i in range(5):
                patch = np.s_[2:14, round(i * 9.5) + 2 : round(i * 9.5) + 7]
                difference = np.abs(got[patch].mean((0, 1)) - expected[patch].mean((0, 1)))
                assert difference.max() < 3, (i, got[patch].mean((0, 1)))
            assert np.abs(got[20:30, 4:44] - expected[20:30, 4:44]).mean() < 2
    finally:
        for v, s in ((video, spool), (full, full_spool)):
            v.close()
            s.close()


@pytest.mark.parametrize(("frames", "decodes_once"), [(24, True), (40, False)])
def test_a_clip_that_fits_the_larger_cache_is_decoded_once_however_it_is_played(
    monkeypatch, frames, decodes_once
):
    """A short clip under longer speech (bounce: backward play, then loop) is kept whole when it
    fits in WHOLE_CLIP_CACHE_BYTES (here 30 pictures): every picture is decoded once, not again
    for each way back. A longer clip keeps the CACHE_BYTES budget (here 4 pictures) and
    decodes again from keyframes; every picture is still the first pass's."""
    import a2v_server.media.video as video_mod

    picture = SIDE * SIDE * 3 // 2
    monkeypatch.setattr(video_mod, "CACHE_BYTES", 4 * picture)
    monkeypatch.setattr(video_mod, "WHOLE_CLIP_CACHE_BYTES", 30 * picture)
    spool, video = _opened(_clip(frames, movflags="+faststart", gop=8))
    try:
        video.open()
        first = []
        while (item := video.frame(len(first))) is not None:
            first.append(item.i420.copy())
        order = [*range(frames - 2, -1, -1), *range(1, frames), *range(frames)]
        for slot in order:
            assert np.array_equal(video.frame(slot).i420, first[slot]), slot
        if decodes_once:
            assert video.decoded == frames and video.seeks == 0
        else:
            assert video.decoded > 2 * frames and video._cache_bytes <= 4 * picture
    finally:
        video.close()
        spool.close()
