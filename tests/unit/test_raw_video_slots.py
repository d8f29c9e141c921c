"""Uncompressed speaker-video frames (media/raw_video.py): slots by the frames' own times, a
slot handed out only once the frame after it is known, random access by offset, and a reader
woken when the input ends or fails."""

from __future__ import annotations

import threading

import pytest

from a2v_server.domain import RawFrame
from a2v_server.errors import InvalidInput
from a2v_server.media.raw_video import RawVideo
from a2v_server.media.spool import Spool, SpoolAborted

W, H = 8, 4


def _frame(k: int, time_us: int = 0, fmt: str = "i420") -> RawFrame:
    size = W * H * 3 // 2 if fmt == "i420" else W * H * 3
    return RawFrame(bytes([k]) * size, fmt, W, H, 25.0, time_us)


def _video() -> tuple[Spool, RawVideo]:
    spool = Spool(1 << 20)
    return spool, RawVideo(spool, max_pixels=10_000, max_frames=100)


def _shown(video: RawVideo, slot: int) -> int | None:
    picture = video.frame(slot)
    if picture is None:
        return None
    array = picture.i420 if picture.i420 is not None else picture.rgb
    assert array is not None
    return int(array.flat[0])


def test_a_slot_waits_for_a_later_frame_that_falls_in_it():
    """Frames at 0, 40 and 50 ms: slot 1 (up to 60 ms) shows the 50 ms frame, so it is not
    handed out while only the 40 ms frame is here."""
    spool, video = _video()
    video.add(_frame(0))
    video.add(_frame(1, 40_000))
    video.open()
    got: list[int | None] = []
    reader = threading.Thread(target=lambda: got.append(_shown(video, 1)))
    reader.start()
    reader.join(timeout=0.3)
    video.add(_frame(2, 50_000))
    video.add(_frame(3, 80_000))
    reader.join(timeout=10)
    assert got == [2]
    spool.finish()
    assert [_shown(video, k) for k in range(4)] == [0, 2, 3, None]
    assert video.count_slots() == 3


def test_evenly_spaced_frames_are_read_back_in_any_order():
    spool, video = _video()
    for k in range(6):
        video.add(_frame(k, fmt="rgb24"))
    spool.finish()
    info = video.open()
    assert (info.width, info.height, info.colour) == (W, H, None)
    assert [_shown(video, k) for k in (5, 0, 3, 3, 1, 6)] == [5, 0, 3, 3, 1, None]
    picture = video.frame(2)
    assert picture is not None and picture.rgb is not None and picture.rgb.shape == (H, W, 3)


def test_a_reader_waiting_for_frames_is_woken_when_the_input_fails():
    spool, video = _video()
    video.add(_frame(0))
    video.open()
    errors: list[BaseException] = []

    def read():
        try:
            video.frame(3)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    spool.abort()
    reader.join(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], SpoolAborted)


def test_a_video_that_ends_before_its_first_frame_says_so():
    spool, video = _video()
    spool.finish()
    with pytest.raises(InvalidInput, match="before its first frame"):
        video.open()


def test_times_on_some_frames_only_are_refused():
    _, video = _video()
    video.add(_frame(0))
    video.add(_frame(1))
    with pytest.raises(InvalidInput, match="on every frame after the first, or on none"):
        video.add(_frame(2, 80_000))
