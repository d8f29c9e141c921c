"""A stand-in for Triton, for the service tier only: a centred face, grey frames whose
brightness follows the audio level. Same protocol as a2v_server.inference.backend.Backend."""

from __future__ import annotations

import asyncio

import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE, frame_count
from a2v_server.domain import Analysis, BeatGrid, Span
from a2v_server.inference.backend import Face, FrameBatch

RATE = MODEL_SAMPLE_RATE


def fake_mouth_source(index: np.ndarray) -> np.ndarray:
    """The fake lipsync's MOUTH_SOURCE for output frames ``index``: 0, 1, 2, 1, 1, 0, 1, 2, ...
    (a period of 5: one passed through, three warped, one retrieved), so tests can predict
    the Summary's counts from the frame count."""
    return np.array([0, 1, 2, 1, 1], np.uint8)[np.asarray(index) % 5]


#: the fake avatar's frame i has a MARK x MARK block at the top left of value frame_mark(i)
MARK = 16


def frame_mark(i: int) -> int:
    return (i * 37) % 200 + 20


def _numbered(portrait: np.ndarray, first: int, n: int) -> np.ndarray:
    """Frames first .. first + n - 1 of the fake avatar: the portrait, its corner numbered."""
    frames = np.repeat(portrait[None], n, axis=0)
    for k in range(n):
        frames[k, :MARK, :MARK] = frame_mark(first + k)
    return frames


def level_pixels(samples: np.ndarray) -> int:
    """The grey a two-face fake avatar shows for a frame's audio: 20 in silence, up to 250."""
    level = float(np.abs(samples).mean()) if len(samples) else 0.0
    return int(20 + min(230, level * 1000))


class FakeAvatar:
    def __init__(
        self,
        portrait: np.ndarray | None,
        fps: float,
        hold: asyncio.Event | None = None,
        start_frame: int = 0,
    ) -> None:
        self.portrait = portrait
        self.start_frame = start_frame  # avatar: the first frame it sends
        self.video_frames: list[np.ndarray] = []  # lipsync: frames sent in, echoed back
        self.origins: list = []  # ... and where each crop's top-left pixel is
        self.fps = fps
        self.queue: asyncio.Queue = asyncio.Queue()
        self.hold = hold
        #: lipsync: send MOUTH_SOURCE (False: an older model without that output)
        self.mouth_source = True
        self.got_last = False  # the whole input has arrived
        self.closed = False
        #: two-face fakes: the avatar sends only this box around its face, grey at the audio's
        #: level (level_pixels); None: whole numbered frames
        self.region: tuple[int, int, int, int] | None = None
        self.heard: list[np.ndarray] = []  # the audio it got
        #: lipsync: take the crops as packed I420 (and echo them so), as the real model does
        self.takes_i420 = False

    async def send_audio(self, samples, *, last=False, frames=None, source_index=None, origin=None):
        if frames is not None:  # lipsync: crops of the frames; echoed back whole (no REGION)
            self.video_frames.extend(frames)
            self.origins.extend([origin] * len(frames))
        self.got_last = self.got_last or last
        self.heard.append(np.asarray(samples, np.float32))
        await self.queue.put((np.asarray(samples, np.float32), last))

    async def batches(self):
        if self.hold is not None:  # renders nothing until the test lets it
            await self.hold.wait()
        received = np.zeros(0, np.float32)
        done = 0
        skip = self.start_frame  # frames before it are "animated", not sent
        while True:
            samples, last = await self.queue.get()
            received = np.concatenate([received, samples])
            total = frame_count(len(received), self.fps)  # the models' rule
            n = total - done if last else max(0, int(len(received) * self.fps / RATE) - 1 - done)
            if n and self.portrait is None:  # lipsync: echo the video frames
                n = min(n, len(self.video_frames) - done)
            if n:
                frames = (
                    _numbered(self.portrait, done, n)
                    if self.portrait is not None
                    else np.stack(self.video_frames[done : done + n])
                )
                if self.region is not None:
                    x0, y0, x1, y1 = self.region
                    levels = [
                        level_pixels(
                            received[int(i * RATE / self.fps) : int((i + 1) * RATE / self.fps)]
                        )
                        for i in range(done, done + n)
                    ]
                    frames = np.stack([np.full((y1 - y0, x1 - x0, 3), v, np.uint8) for v in levels])
                lipsync = self.portrait is None and self.mouth_source
                a = min(n, max(0, skip - done))  # before start_frame: not sent
                if a < n:
                    yield FrameBatch(
                        done + a,
                        frames[a:],
                        np.zeros(n - a, np.float32),
                        mouth_source=fake_mouth_source(np.arange(done + a, done + n))
                        if lipsync
                        else None,
                        # lipsync: no face where the fake passes the frame through
                        face_found=(fake_mouth_source(np.arange(done + a, done + n)) > 0).astype(
                            np.uint8
                        )
                        if lipsync
                        else None,
                        face_score=np.where(
                            fake_mouth_source(np.arange(done + a, done + n)) > 0, 0.9, 0.0
                        ).astype(np.float32)
                        if lipsync
                        else None,
                        region=self.region,
                    )
                done += n
            if last:
                return

    async def aclose(self):
        self.closed = True


class FakeBackend:
    """``hold``: an event that every avatar waits for before it renders its first frame (a
    generation that takes as long as the test wants)."""

    def __init__(
        self, faces: bool = True, hold: asyncio.Event | None = None, two_faces: bool = False
    ) -> None:
        self.faces = faces
        #: two faces in every picture, a large one on the left and a smaller one on the right
        self.two_faces = two_faces
        self.hold = hold
        #: lipsync sends MOUTH_SOURCE (False: as an older lipsync model, without it)
        self.mouth_source = True
        #: lipsync takes its frames as packed I420 (as the real model does); False: RGB
        self.i420 = False
        #: the LipsyncOptions of every lipsync stream opened
        self.lipsync_options: list = []
        self.avatars: list[FakeAvatar] = []
        #: (samples, AnalysisOptions) of every analyze_audio call
        self.analysed: list = []

    async def ready(self, models=()):
        return True

    async def lookahead_seconds(self, model):
        return 0.05

    async def analyze_faces(self, image):
        if not self.faces:
            return []
        h, w = image.shape[:2]
        boxes = (
            [(w * 0.1, h * 0.3, w * 0.4, h * 0.7), (w * 0.6, h * 0.35, w * 0.85, h * 0.65)]
            if self.two_faces
            else [(w * 0.35, h * 0.3, w * 0.65, h * 0.7)]
        )
        return [
            Face(
                b,
                1.0,
                np.tile(np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]], np.float32), (68, 1)),
            )
            for b in boxes
        ]

    async def open_avatar(self, portrait, landmarks, options, *, mesh=None, start_frame=0):
        avatar = FakeAvatar(portrait, options.fps, self.hold, start_frame)
        if self.two_faces:  # send the box around this face only
            cx, cy = (int(v) // 2 * 2 for v in np.asarray(landmarks).mean(axis=0))
            h, w = portrait.shape[:2]
            avatar.region = (max(0, cx - 20), max(0, cy - 20), min(w, cx + 20), min(h, cy + 20))
        self.avatars.append(avatar)
        return avatar

    async def open_lipsync(self, options):
        avatar = FakeAvatar(None, options.fps, self.hold)
        avatar.mouth_source = self.mouth_source
        avatar.takes_i420 = self.i420
        self.lipsync_options.append(options)
        self.avatars.append(avatar)
        return avatar

    async def analyze_audio(self, samples, options):
        """Loudness stands in for the analysis: voiced where the level is above -40 dBFS (in
        10 ms steps), the jaw curve is the level per frame. Keeps what it got in
        ``analysed``."""
        samples = np.asarray(samples, np.float32)
        self.analysed.append((samples, options))
        hop = RATE // 100
        levels = [
            float(np.abs(samples[i : i + hop]).max(initial=0)) for i in range(0, len(samples), hop)
        ]
        loud = [level > 0.01 for level in levels]
        voiced, start = [], None
        for k, on in enumerate([*loud, False]):
            if on and start is None:
                start = k / 100
            elif not on and start is not None:
                voiced.append((start, k / 100))
                start = None
        duration = len(samples) / RATE
        frames = frame_count(len(samples), options.fps)
        per = RATE / options.fps
        jaw = tuple(
            min(1.0, float(np.abs(samples[int(i * per) : int((i + 1) * per)]).max(initial=0)))
            for i in range(frames)
        )
        kind = 1 if voiced else 3
        return Analysis(
            duration_seconds=duration,
            kind=kind,
            segments=(Span(kind, 0.0, duration),),
            voiced=tuple(voiced),
            phones=(),
            visemes=(Span(1, 0.0, duration),),
            aligned=bool(options.transcript),
            jaw_fps=options.fps,
            jaw_open=jaw,
            beat_grid=BeatGrid(),
            onsets=tuple(a for a, _ in voiced),
        )

    async def aclose(self):
        pass
