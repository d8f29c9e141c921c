"""Re-rendering a time range of a clip (GenerateConfig.range).

An editor re-does one part of a clip and splices it into the full render, so the range's
frames must be the full render's frames with the full render's timestamps, and the splice
points must be keyframes of both. The range is therefore snapped outwards to the encoder's
keyframe grid (every ``keyframe_interval`` frames from frame 0): it starts on a keyframe of
the full render, and its end is the full render's next keyframe (or the clip's end).

The model still gets the audio from the clip's start (its state at the range's first frame
depends on everything before: the animation's phase, the tracker): the talking avatar starts
its output at the first frame (START_FRAME: the earlier frames are animated, not rendered);
lipsync renders the earlier frames and the server drops them before the encoder, which is
most of lipsync's cost. After the range's end the model gets its lookahead's worth of audio
more, so its last frames are made from the same audio as in the full render, and no more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE
from a2v_server.inference.backend import FrameBatch
from a2v_server.media.encoder import keyframe_interval, sample_at

#: audio the model gets beyond the range's end, on top of its declared lookahead
MODEL_AUDIO_MARGIN_SECONDS = 0.2


@dataclass(frozen=True)
class FrameRange:
    """Frames ``first`` .. ``end - 1`` of the clip (``end`` None: to the clip's end)."""

    first: int
    end: int | None
    fps: float

    @property
    def start_seconds(self) -> float:
        return self.first / self.fps

    @property
    def end_seconds(self) -> float:
        """0 for "to the end" (as Accepted.range says)."""
        return 0.0 if self.end is None else self.end / self.fps

    def output_samples(self, rate: int) -> tuple[int, int | None]:
        """The output audio's part, in samples at ``rate`` from the clip's start."""
        end = None if self.end is None else sample_at(self.end, self.fps, rate)
        return sample_at(self.first, self.fps, rate), end

    def model_samples(self, lookahead_seconds: float) -> int | None:
        """Model-rate samples the model needs for every frame of the range; None: all."""
        if self.end is None or lookahead_seconds <= 0:
            return None
        seconds = self.end / self.fps + lookahead_seconds + MODEL_AUDIO_MARGIN_SECONDS
        return math.ceil(seconds * MODEL_SAMPLE_RATE)

    def frames_of(self, clip_frames: int) -> int:
        """The range's frame count in a clip of ``clip_frames``."""
        end = clip_frames if self.end is None else min(self.end, clip_frames)
        return max(0, end - self.first)

    def part(self, first_index: int, count: int) -> tuple[int, int]:
        """Which of frames first_index .. first_index + count - 1 are in the range: offsets
        (a, b) into them (a == b: none)."""
        end = first_index + count if self.end is None else min(self.end, first_index + count)
        a = min(count, max(0, self.first - first_index))
        return a, max(a, end - first_index)


def snap(start_seconds: float, end_seconds: float | None, fps: float) -> FrameRange:
    """The range that covers [start, end) seconds, widened to keyframes of the clip."""
    gop = keyframe_interval(fps)
    # a frame shows [i / fps, (i + 1) / fps); a hair of tolerance for times given as i / fps
    first = math.floor(start_seconds * fps + 1e-6) // gop * gop
    end = None
    if end_seconds is not None:
        end = math.ceil(math.ceil(end_seconds * fps - 1e-6) / gop) * gop
    return FrameRange(first, end, fps)


def batch_part(batch: FrameBatch, a: int, b: int) -> FrameBatch:
    """Frames a .. b - 1 of ``batch`` (every per-frame output cut alike)."""

    def cut(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[a:b]

    return replace(
        batch,
        first_index=batch.first_index + a,
        frames=batch.frames[a:b],
        mouth_open=batch.mouth_open[a:b],
        viseme=cut(batch.viseme),
        head_pose=cut(batch.head_pose),
        blink=cut(batch.blink),
        face_found=cut(batch.face_found),
        mouth_source=cut(batch.mouth_source),
        face_boxes=cut(batch.face_boxes),
        face_score=cut(batch.face_score),
        parts=None if batch.parts is None else tuple(batch_part(p, a, b) for p in batch.parts),
        shown=cut(batch.shown),
    )
