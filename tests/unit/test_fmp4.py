"""Tests of a2v_server.media.fmp4.Mp4BoxSplitter on hand-built boxes and real muxer output."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from a2v_server.media.encoder import FragmentedMp4Encoder
from a2v_server.media.fmp4 import Mp4BoxSplitter, Segment


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def trak(track_id: int, handler: bytes, timescale: int, media_time: int | None = None) -> bytes:
    tkhd = full(b"tkhd", 0, 3, struct.pack(">IIII", 0, 0, track_id, 0), bytes(64))
    mdhd = full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, 0), bytes(4))
    hdlr = full(b"hdlr", 0, 0, bytes(4), handler, bytes(12), b"\0")
    parts = [tkhd]
    if media_time is not None:
        parts.append(
            box(b"edts", full(b"elst", 0, 0, struct.pack(">IIiI", 1, 0, media_time, 1 << 16)))
        )
    return box(b"trak", *parts, box(b"mdia", mdhd, hdlr))


def init_segment() -> bytes:
    mvhd = full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), bytes(80))
    trex = [
        full(b"trex", 0, 0, struct.pack(">IIIII", tid, 1, dur, 0, 0))
        for tid, dur in ((1, 1024), (2, 512))
    ]
    moov = box(
        b"moov",
        mvhd,
        trak(1, b"soun", 48000),
        trak(2, b"vide", 12800, media_time=256),
        box(b"mvex", *trex),
    )
    return box(b"ftyp", b"isom", bytes(4), b"isomiso6") + moov


def fragment(
    base: int,
    count: int,
    *,
    tfhd_duration: int | None = None,
    durations: list[int] | None = None,
    v1: bool = False,
) -> bytes:
    """moof+mdat with an audio traf (track 1) and a video traf (track 2)."""
    flags = 0x020000 | (0x08 if tfhd_duration is not None else 0)
    tfhd = full(
        b"tfhd",
        0,
        flags,
        struct.pack(">I", 2),
        b"" if tfhd_duration is None else struct.pack(">I", tfhd_duration),
    )
    tfdt = full(b"tfdt", 1 if v1 else 0, 0, struct.pack(">Q" if v1 else ">I", base))
    if durations is None:
        trun = full(b"trun", 0, 0x201, struct.pack(">Ii", count, 0), bytes(4 * count))
    else:
        samples = b"".join(struct.pack(">II", d, 10) for d in durations)
        trun = full(b"trun", 0, 0x301, struct.pack(">Ii", len(durations), 0), samples)
    audio = box(
        b"traf",
        full(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
        full(b"tfdt", 0, 0, struct.pack(">I", 999_999)),
        full(b"trun", 0, 0x1, struct.pack(">Ii", 3, 0)),
    )
    moof = box(
        b"moof", full(b"mfhd", 0, 0, struct.pack(">I", 1)), audio, box(b"traf", tfhd, tfdt, trun)
    )
    return moof + box(b"mdat", bytes(37))


def test_handmade_stream_times_and_grouping():
    styp = box(b"styp", b"msdh", bytes(4))
    stream = (
        init_segment()
        + fragment(256, 10)  # trex default: 10 * 512
        + styp
        + fragment(256 + 5120, 4, tfhd_duration=1280)  # tfhd default
        + fragment(256 + 10240, 0, durations=[100, 200, 300], v1=True)  # per sample
        + box(b"mfra", bytes(16))
    )
    splitter = Mp4BoxSplitter()
    segments = [s for i in range(0, len(stream), 7) for s in splitter.feed(stream[i : i + 7])]
    segments += splitter.flush()
    assert [s.kind for s in segments] == ["init", "fragment", "fragment", "fragment"]
    assert segments[0].data == init_segment()
    assert segments[2].data.startswith(styp)
    assert all(s.data[4:8] == b"moof" for s in (segments[1], segments[3]))
    # the video edit list (media_time 256) shifts everything back to presentation time 0
    times = [t for s in segments[1:] for t in (s.start_seconds, s.end_seconds)]
    assert times == pytest.approx([0.0, 0.4, 0.4, 0.8, 0.8, 0.8 + 600 / 12800])
    # the mfra index is dropped: concatenation is the stream without it
    assert b"".join(s.data for s in segments) == stream[: -len(box(b"mfra", bytes(16)))]


def test_flush_returns_an_unfinished_fragment():
    splitter = Mp4BoxSplitter()
    frag = fragment(256, 10)
    assert [s.kind for s in splitter.feed(init_segment() + frag[:-5])] == ["init"]
    rest = splitter.flush()
    assert len(rest) == 1 and rest[0].kind == "fragment" and rest[0].data == frag[:-5]
    assert splitter.flush() == []


def test_largesize_boxes():
    payload = bytes(20)
    large = struct.pack(">I4sQ", 1, b"free", 16 + len(payload)) + payload
    splitter = Mp4BoxSplitter()
    out = splitter.feed(init_segment() + large + fragment(256, 2))
    assert [s.kind for s in out] == ["init", "fragment"]
    assert out[1].data.startswith(large)


def test_real_muxer_output_in_random_pieces():
    """The encoder's segments survive being re-split from arbitrary write sizes."""
    encoder = FragmentedMp4Encoder(64, 64, 25, 1, fragment_seconds=0.2)
    segments: list[Segment] = []
    frame = np.full((64, 64, 3), 128, np.uint8)
    segments += encoder.add_audio(np.zeros((1, 48000), np.float32))
    for _ in range(25):
        segments += encoder.add_video(frame)
    segments += encoder.close()
    stream = b"".join(s.data for s in segments)
    rng = np.random.default_rng(0)
    splitter, again, pos = Mp4BoxSplitter(), [], 0
    while pos < len(stream):
        size = int(rng.integers(1, 3000))
        again += splitter.feed(stream[pos : pos + size])
        pos += size
    again += splitter.flush()
    assert again == segments
    assert segments[0].kind == "init" and b"moof" not in segments[0].data
    ends = [s.end_seconds for s in segments[1:]]
    assert ends[-1] == pytest.approx(1.0)
