"""Real mouth interiors for lipsync, retrieved from the speaker's own video (Video Rewrite).

The warp (video_mouth.reanimate) moves the lower lip and jaw to the opening the speech asks
for, but where the mouth opens further than the source frame's it has no content and paints
a dark, shaded interior: an open mouth without teeth. Bregler et al. (Video Rewrite, SIGGRAPH
1997) take the mouth from another frame of the same video instead. SourceMouths, one per
lipsync sequence and what model.py uses, holds the parts together:

* Library (mouth_library.py): the video's open mouths, described and bounded.
* Choice (here, SourceMouths.choose: it needs the previous output frame's entry). Only when
  the warp would have to paint: the gap asked for (OPEN_GAP * openness mouth widths) exceeds
  the frame's own by more than NEED. The wanted shape is the frame's own lip contours with the
  lower lip moved as the warp moves it. Among the entries whose gap is within TOLERANCE of the
  one asked for, more open than the frame's own, lit alike (COLOUR_GATE) and seen from the
  same pose (POSE_GATE), the cost is the lip shape distance (RMS, mouth widths) + the gap
  difference + a colour term + SWITCH unless the entry is the one used for the previous output
  frame or its successor in the source: a mouth held over slowly changing openings does not
  flicker between near-equal entries. No such entry (the start of a video, a speaker who
  never opens the mouth): the warp alone.
* Render (SourceMouths.render): the warp, then the chosen mouth pasted between the lips
  (mouth_paste.py); only the pixels they change come back (a frame_region.Patch).

Which frames the library holds: for output frame i, the mouths of output frames 0..i and no
others (causal, in output order): lipsync's model.py observes each frame just before its own
choice, not when it arrives. On arrival the library held whatever frames had come by the
time frame i was rendered, which depends on how the server cut the frames and audio into
requests (the audio's arrival, the frames in flight): the same inputs chose other entries
(pixels up to 79 levels apart around the mouth) and a range re-render (RENDER_FROM) could
not reproduce the full render's frames for an editor's splice. Causal, every output frame is
a function of the inputs alone (the frames, their source indices, the audio, the settings);
the choice's state (the previous entry) and the library's evictions follow the same order,
so they are too.
The alternative, the frames up to i + L for a fixed L, would be as deterministic, but the
model would have to hold frame i until frame i + L came (or the sequence's end): L frames
more latency on every response, and the server bounds the frames in flight (0.6 s, 4 at the
start) and sends each only after the audio that covers it, so for L of 4 or more its feed
and the model would wait for each other. What lookahead buys, measured (frames retrieved,
MOUTH_SOURCE == 2) with the old code, which took frames on arrival: as the server cuts (the
audio 0.1 s at a time, then the frames it covers, 8 to a request), with the frames 13 to a
request 30 ahead of their audio, and with every frame before any audio (the most there can
be); causal, any cut gives the same:

=======================================  ======  ======  ===========  =========  ======
clip                                     frames  server  30 frames    all first  causal
                                                         ahead
=======================================  ======  ======  ===========  =========  ======
tests: smile closing, then shut (teeth)      15       3            3          3       3
tests: moving smile closing (crops)          16       3            3          3       3
tests: talking, moving (RENDER_FROM)         50       7            7          7       7
10 s talking astronaut (espeak), moving     250      31           31         31      31
the same, mouth shut for the first 4 s      250      17           24         56      15
=======================================  ======  ======  ===========  =========  ======

Lookahead changes which mouth is taken more often than whether one is (on the 10 s clip, 14
of the 31 retrieved frames took a later frame's mouth with every frame first, none with the
server's cut), and retrieves more only while the video has shown no open mouth yet: a
speaker who opens the mouth late loses the frames just before it (2 of 250 with the server's
cut, 41 against every frame first, which a stream never has). Causal it is.

Frames may be crops of the video's frames (lipsync's server sends a window around the face):
the library and the renderer work in the pixels of the image they are given, with the mesh in
the same pixels; the canonical mouth crops do not depend on where the crop was taken.

Paths per frame (MOUTH_SOURCE): PASSED (no face), WARP, RETRIEVED.
"""

from __future__ import annotations

import numpy as np
from frame_region import Patch
from mouth_library import CAP, ON_LOWER_LIP, Entry, MouthLibrary, lip_points
from mouth_paste import paste
from video_mouth import OPEN_GAP, MouthFrame, mouth_frame, warp_patch

PASSED, WARP, RETRIEVED = 0, 1, 2

#: choice: retrieve when the warp would paint more than NEED mouth widths of interior; accept
#: entries whose gap is within TOLERANCE (absolute, or relative to the gap asked for)
NEED = 0.04
TOLERANCE = (0.04, 0.3)
#: gates: the light (max channel difference of the upper lip region's mean colour, 0..255)
#: and the pose (nose tip offset in mouth widths, eye distance / mouth width relative, roll
#: relative to the mouth in radians)
COLOUR_GATE = 30.0
POSE_GATE = (0.15, 0.15, 0.2, 0.12)
#: costs: gap difference weight, colour weight (per 255), switching penalty (mouth widths)
GAP_WEIGHT = 1.0
COLOUR_WEIGHT = 0.1
SWITCH = 0.03


class SourceMouths:
    """One video's mouth library and the renderer that uses it (one per lipsync sequence)."""

    def __init__(self, cap: int = CAP) -> None:
        self.library = MouthLibrary(cap)
        self._previous: int | None = None  # source index of the entry used last frame

    def observe(
        self,
        index: int,
        frame: np.ndarray,
        mesh: np.ndarray | None,
        mf: MouthFrame | None = None,
    ) -> None:
        """A tracked source frame (frames already seen are ignored). lipsync observes each
        output frame just before its ``render`` (or ``advance``), in output order: the library
        then depends on the frames alone, not on when they arrived (see the module doc).
        ``mf``: the mesh's mouth_frame when the caller has it (it is made once a frame)."""
        if mesh is not None:
            self.library.add(index, frame, mesh, mf)

    def render(
        self,
        frame: np.ndarray,
        mesh: np.ndarray,
        openness: float,
        mf: MouthFrame | None = None,
    ) -> tuple[Patch | None, int, Entry | None]:
        """``frame``'s mouth at ``openness`` (``mesh`` in ``frame``'s pixels): the changed
        pixels (None when the change is below a pixel), the path (WARP or RETRIEVED) and the
        library entry used (None for the warp). ``patch.onto(frame)`` is the whole frame."""
        mf = mf or mouth_frame(mesh)
        warped = warp_patch(frame, mesh, openness, mf)
        entry = self.choose(frame, mesh, openness, mf)
        self._previous = None if entry is None else entry.index
        scale = self.library.scale
        if entry is None or scale is None:  # (an entry means a scale: it is set with the first)
            return warped, WARP, None
        points = lip_points(mesh, mf)
        target_mid = mf.target_mid(openness)
        pasted = paste(frame, warped, mf, points, target_mid, entry, scale)
        return (warped, WARP, None) if pasted is None else (pasted, RETRIEVED, entry)

    def advance(
        self, frame: np.ndarray, mesh: np.ndarray, openness: float, mf: MouthFrame | None = None
    ) -> None:
        """What ``render`` does to this object's state, without the pixels: a frame that
        lipsync's RENDER_FROM processes but does not send. The choice is all of the state
        (the entry used, which the next frame's choice prefers); the warp and the paste keep
        none, and ``render`` records its entry whether or not the paste then takes it."""
        entry = self.choose(frame, mesh, openness, mf or mouth_frame(mesh))
        self._previous = None if entry is None else entry.index

    def choose(
        self,
        frame: np.ndarray,
        mesh: np.ndarray,
        openness: float,
        mf: MouthFrame | None = None,
    ) -> Entry | None:
        """The library mouth for this output frame, or None when the warp should do."""
        mf = mf or mouth_frame(mesh)
        own = mf.source_mid() / mf.width
        wanted = OPEN_GAP * min(max(float(openness), 0.0), 1.0)  # (np.clip: ~10 us a number)
        entries = self.library.entries
        if wanted - own < NEED or not entries or self.library.scale is None:
            return None
        here = self.library.described(frame, mesh, mf)  # (observe described it already)
        target = here.points.copy()
        u = target[ON_LOWER_LIP, 0] * mf.width
        target[ON_LOWER_LIP, 1] += mf.shift(u, mf.target_mid(openness)) / mf.width
        gaps = np.array([e.mouth.gap for e in entries])
        colours = np.stack([e.mouth.colour for e in entries])
        poses = np.stack([e.mouth.pose for e in entries])
        shapes = np.stack([e.mouth.points for e in entries])
        tolerance = max(TOLERANCE[0], TOLERANCE[1] * wanted)
        colour_diff = np.abs(colours - here.colour).max(1)
        pose_diff = np.abs(poses - here.pose)
        pose_diff[:, 2] /= max(here.pose[2], 1e-6)
        ok = (
            (np.abs(gaps - wanted) <= tolerance)
            & (gaps >= own + NEED / 2)
            & (colour_diff <= COLOUR_GATE)
            & np.all(pose_diff <= np.array(POSE_GATE), axis=1)
        )
        if not ok.any():
            return None
        shape = np.sqrt(((shapes - target) ** 2).sum(2).mean(1))
        cost = shape + GAP_WEIGHT * np.abs(gaps - wanted) + COLOUR_WEIGHT * colour_diff / 255
        if self._previous is not None:
            follows = np.array([e.index in (self._previous, self._previous + 1) for e in entries])
            cost = cost + SWITCH * ~follows
        cost[~ok] = np.inf
        return entries[int(np.argmin(cost))]
