"""A quality report per fragment (MediaChunk.report): what an editor needs to spot a bad span
of a clip without watching it.

Per output frame the reporter keeps: whether a face was tracked and animated, the tracking
confidence, whether the mouth is open in the output, whether the audio is voiced there, and
for lipsync whether the speaker video cuts or loops at that frame. When the encoder hands out
a fragment, its frames (by presentation time) are summed up into a ``FragmentReport``.

* Voice activity is judged on the output audio itself (what the viewer hears): a frame's audio
  is voiced when its level is within ``VOICE_RANGE_DB`` of the loudest frame so far and above
  ``VOICE_FLOOR_DB``. The mouth is open when the rendered opening is at least ``MOUTH_OPEN``.
  Speech closes the mouth on some voiced frames (m, b, p), so agreement on good sync is high
  but below 1; a span without a face while someone speaks scores low.
* A cut: consecutive output frames showing consecutive source frames whose pictures differ by
  more than ``CUT_DIFFERENCE`` grey levels on average (on a grid of samples of the luma), and
  either whose luma histograms share less than ``CUT_OVERLAP`` of their samples (a fast pan or
  a face sliding out of the picture moves the pixels but keeps most of the histogram), or
  which no shift of the picture by up to ``CUT_SHIFT`` samples brings within ``CUT_MOVED``
  (a pan moves the picture; a cut to a shot of similar tones keeps the histogram but not the
  picture: the sample portrait to skimage's coffee cup or cameraman, histograms sharing
  0.63-0.65 and 67-76 grey levels apart however shifted, pans of up to 3 samples a frame
  0-28, an 8 % zoom 24-34).
* Looped: the source frame shown goes back (a loop's jump, a bounce's backward leg) or stays
  (a held last frame): the picture does not run on as recorded. Remap's repeated frames are a
  stretch, not a loop.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from a2v_server.domain import FragmentReport
from a2v_server.media.encoder import sample_at
from a2v_server.media.fmp4 import Segment

VOICE_FLOOR_DB = -45.0
VOICE_RANGE_DB = 30.0
MOUTH_OPEN = 0.15
CUT_DIFFERENCE = 30.0
CUT_OVERLAP = 0.6
CUT_SHIFT = 3
CUT_MOVED = 45.0
#: thumbnail size of the cut detector (about 32 x 18 samples of the luma)
THUMB = 32


@dataclass
class _Frame:
    index: int
    face: bool
    score: float
    mouth_open: bool
    cut: bool = False
    looped: bool = False


class FragmentReporter:
    """Collects per-frame facts as frames are encoded; ``report`` sums up a fragment."""

    def __init__(self, fps: float, first_frame: int, audio_rate: int, *, mode: str = "") -> None:
        self.fps = fps
        self._first_frame = first_frame
        self._audio_rate = audio_rate
        self._mode = mode  # lipsync's sync mode ("remap" repeats frames without looping)
        self._frames: deque[_Frame] = deque()
        self._audio = np.zeros(0, np.float32)  # mono output audio not yet measured
        self._measured = 0  # frames whose audio level is known (from the first frame)
        self._held_from = 0  # the sample (from the first frame's) _audio starts at
        self._first_sample = sample_at(first_frame, fps, audio_rate)
        self._levels: dict[int, float] = {}  # frame index -> level in dBFS
        self._loudest = -math.inf
        self._last_face = False  # no frame before the first: nothing to lose
        self._last_slot: int | None = None
        self._last_thumb: np.ndarray | None = None

    # --- input ------------------------------------------------------------------------------
    def add_audio(self, pcm: np.ndarray) -> None:
        """Output audio (channels, n) as the encoder gets it (from the first frame's time)."""
        self._audio = np.concatenate((self._audio, pcm.mean(axis=0, dtype=np.float32)))
        while True:
            i = self._first_frame + self._measured
            a, b = self._sample(i) - self._held_from, self._sample(i + 1) - self._held_from
            if b > self._audio.size:
                return
            x = self._audio[a:b]
            level = 10 * math.log10(float(np.mean(x * x)) + 1e-12) if x.size else -120.0
            self._levels[i] = level
            self._loudest = max(self._loudest, level)
            self._audio = self._audio[b:]
            self._held_from += b
            self._measured += 1

    def _sample(self, i: int) -> int:
        """Frame i's first audio sample, counted from the first frame's."""
        return sample_at(i, self.fps, self._audio_rate) - self._first_sample

    def add_frames(
        self,
        first_index: int,
        mouth_open: np.ndarray,
        face_found: np.ndarray | None,
        face_score: np.ndarray | float,
        slots: list[int] | None = None,
        lumas: list[np.ndarray] | None = None,
    ) -> None:
        """A batch of output frames: their mouth openings, whether a face was animated (None:
        always), the tracking confidence (per frame, or one value: a portrait's), and for
        lipsync the source slots they show and their luma planes."""
        scores = np.broadcast_to(np.asarray(face_score, np.float32), (len(mouth_open),))
        for k in range(len(mouth_open)):
            face = True if face_found is None else bool(face_found[k])
            frame = _Frame(
                first_index + k,
                face,
                float(scores[k]) if face else 0.0,
                face and float(mouth_open[k]) >= MOUTH_OPEN,
            )
            if slots is not None:
                slot, last = slots[k], self._last_slot
                if last is not None:
                    frame.looped = slot < last or (slot == last and self._mode != "remap")
                if lumas is not None:
                    thumb = _thumb(lumas[k])
                    if last is not None and slot == last + 1 and self._last_thumb is not None:
                        frame.cut = _is_cut(self._last_thumb, thumb)
                    self._last_thumb = thumb
                self._last_slot = slot
            self._frames.append(frame)

    # --- output -----------------------------------------------------------------------------
    def report(self, segment: Segment) -> FragmentReport | None:
        """The report of a fragment's frames (None for the init segment)."""
        if segment.kind != "fragment":
            return None
        first = round(segment.start_seconds * self.fps)
        end = round(segment.end_seconds * self.fps)
        frames = []
        while self._frames and self._frames[0].index < end:
            frame = self._frames.popleft()
            if frame.index >= first:
                frames.append(frame)
        if not frames:
            return FragmentReport(frames=0)
        agree = [f.mouth_open == self._voiced(f.index) for f in frames if f.index in self._levels]
        lost = False
        for f in frames:
            lost = lost or (self._last_face and not f.face)
            self._last_face = f.face
        for f in frames:
            self._levels.pop(f.index, None)
        return FragmentReport(
            frames=len(frames),
            face_share=sum(f.face for f in frames) / len(frames),
            tracking_confidence=sum(f.score for f in frames) / len(frames),
            sync_agreement=sum(agree) / len(agree) if agree else 1.0,
            face_lost=lost,
            cut=any(f.cut for f in frames),
            looped=any(f.looped for f in frames),
        )

    def _voiced(self, index: int) -> bool:
        level = self._levels[index]
        return level >= VOICE_FLOOR_DB and level >= self._loudest - VOICE_RANGE_DB


def _is_cut(before: np.ndarray, after: np.ndarray) -> bool:
    if float(np.abs(after - before).mean()) <= CUT_DIFFERENCE:
        return False
    bins = np.linspace(0, 256, 17)
    a = np.histogram(before, bins)[0] / before.size
    b = np.histogram(after, bins)[0] / after.size
    if float(np.minimum(a, b).sum()) < CUT_OVERLAP:
        return True
    return _moved_difference(before, after) > CUT_MOVED


def _moved_difference(before: np.ndarray, after: np.ndarray) -> float:
    """The least mean absolute difference between ``after`` and ``before`` shifted by up to
    CUT_SHIFT samples across and one down or up, over the samples they share."""
    h, w = after.shape
    best = math.inf
    for dy in (-1, 0, 1):
        for dx in range(-CUT_SHIFT, CUT_SHIFT + 1):
            moved = after[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            still = before[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            if moved.size:
                best = min(best, float(np.abs(moved - still).mean()))
    return best


def _thumb(luma: np.ndarray) -> np.ndarray:
    """About THUMB samples across of a luma plane, as float (a grid of single samples: cheap
    at any size, and plenty to tell a cut from motion)."""
    step = max(1, luma.shape[1] // THUMB)
    return luma[step // 2 :: step, step // 2 :: step].astype(np.float32)
