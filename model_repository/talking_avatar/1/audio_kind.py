"""Speech / music / other: a running judgement of the whole audio so far.

Features (all already computed by the other analysers, so this costs nothing):
  * active time: 10 ms hops whose level is above -50 dBFS;
  * voiced share: active time the VAD marks as voice;
  * periodicity: height of the onset-envelope autocorrelation peak at the beat period (beats);
  * tonal share: active hops with a peaky spectrum (spectral flatness < 0.05) — sustained notes.

Rules, in order (speech has syllable rhythm at 3-6 Hz, outside the 60-180 BPM beat range, and
a low tonal share because of its consonants and formant-shaped spectrum):
  under 0.15 s of active audio            -> OTHER (nothing to judge yet; silence)
  periodicity >= 0.45 and voiced < 0.6     -> MUSIC (a steady beat)
  voiced share >= 0.4                      -> SPEECH
  tonal share >= 0.4 or periodicity >= 0.3 -> MUSIC (a melody, a weaker beat)
  else                                     -> OTHER (sound effects, noise)

Shared by talking_avatar (this file) and audio_analysis (audio_analysis/1/audio_kind.py is a
relative symlink to it: the analysis judges the clip and its segments by these rules).
"""

from __future__ import annotations

SPEECH, MUSIC, OTHER = 1, 2, 3
NAMES = {SPEECH: "SPEECH", MUSIC: "MUSIC", OTHER: "OTHER"}

_ACTIVE_DB = -50.0
_TONAL_FLATNESS = 0.05


class AudioKind:
    def __init__(self) -> None:
        self.active_hops = 0
        self.tonal_hops = 0
        self.voiced_active_hops = 0
        self.kind = OTHER

    def add_hop(self, level_db: float, flatness: float, voiced: bool) -> None:
        if level_db < _ACTIVE_DB:
            return
        self.active_hops += 1
        self.tonal_hops += flatness < _TONAL_FLATNESS
        self.voiced_active_hops += voiced

    def update(self, periodicity: float) -> int:
        active_s = self.active_hops * 0.01
        if active_s < 0.15:
            self.kind = OTHER
            return self.kind
        voiced = self.voiced_active_hops / self.active_hops
        tonal = self.tonal_hops / self.active_hops
        if periodicity >= 0.45 and voiced < 0.6:
            self.kind = MUSIC
        elif voiced >= 0.4:
            self.kind = SPEECH
        elif tonal >= 0.4 or periodicity >= 0.3:
            self.kind = MUSIC
        else:
            self.kind = OTHER
        return self.kind
