"""Streaming phone timing with PocketSphinx (bundled en-us acoustic model, nothing downloaded).

Two modes behind one interface:

* ``PhoneTracker()`` — phone recognition with the allphone search (phone bigram LM): works
  for any speech, English labels, noisy (phone error rate ~0.5 on synthetic speech), which is
  why the mouth also follows the signal itself (MouthMotion) and the viseme mapping is coarse.
* ``PhoneTracker(transcript=...)`` — forced alignment to known English text, streamed: the
  transcript's words are looked up in the bundled CMU dictionary and every *phone* becomes a
  one-phone "word" in a linear JSGF grammar (optional silence between words), so the FSG search's
  partial hypothesis is a phone-level alignment while audio still arrives. Words missing from
  the dictionary are skipped. (``set_align_text``/``get_alignment`` give phones only after
  ``end_utt``, i.e. at the end of the clip: not streamable.)

Streaming design (measured on the 2-core reference machine: allphone RTF 0.04, alignment 0.01):
audio is decoded in fixed 80 ms blocks and after every block the partial best path (``seg()``)
becomes the current segmentation. A caller asks for the phone at time t only once the audio
reaches t + lookahead (the partial path lags the decoder front; 100+ ms behind it the labels
are stable in practice), so each answer depends only on the audio up to that block and the
result is independent of how the audio was chunked. Re-decoding sliding windows would cost
~5x more CPU for the same latency; decoding whole VAD utterances would add their length as
latency. Allphone utterances restart after 0.4 s of silence and at 12 s, which keeps the
per-block backtrace short.

Shared by talking_avatar (this file) and audio_analysis (audio_analysis/1/phones.py is a
relative symlink to it: the analysis decodes whole utterances offline with the same model
and alignment grammar, and a faster search: analysis.py).
"""

from __future__ import annotations

import os
import re

import numpy as np
from shared import SAMPLE_RATE

BLOCK = SAMPLE_RATE * 8 // 100  # samples per decode step (80 ms)
_FRAME_S = 0.01  # PocketSphinx frame
_MAX_UTT_S = 12.0
_RESTART_SIL_S = 0.4


def _model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")


def transcript_phones(text: str, lookup) -> list[list[str]]:
    """Words of ``text`` -> their ARPAbet phones (first dictionary pronunciation)."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())
    out = []
    for w in words:
        pron = lookup(w)
        if pron:
            out.append(pron.split())
    return out


class PhoneTracker:
    """Incremental phone segmentation of a 16 kHz stream.

    ``segments``: list of ``(phone, start_s, end_s)`` in stream time (ARPAbet, "SIL" for
    silence), replaced after every block by the current best hypothesis of the running
    utterance appended to the final segmentations of earlier utterances.
    """

    def __init__(self, transcript: str | None = None):
        from pocketsphinx import Decoder

        md = _model_dir()
        self.aligned = False
        common = dict(hmm=os.path.join(md, "en-us"), loglevel="ERROR", bestpath=False)
        text = (transcript or "").strip()
        if text:
            dec = Decoder(
                lm=None,
                dict=os.path.join(md, "cmudict-en-us.dict"),
                fsgusefiller=False,  # no filler words: the path stays inside the grammar
                **common,
            )
            words = transcript_phones(text, dec.lookup_word)
            if words:
                phones = sorted({p for w in words for p in w} - {"SIL"})
                for p in phones:
                    dec.add_word(f"ph_{p.lower()}", p, False)
                dec.add_word("ph_sil", "SIL", True)
                body = " ".join("[ph_sil] " + " ".join(f"ph_{p.lower()}" for p in w) for w in words)
                dec.add_jsgf_string(
                    "align", f"#JSGF V1.0;\ngrammar a;\npublic <s> = {body} [ph_sil];\n"
                )
                dec.activate_search("align")
                self.aligned = True
        if not self.aligned:
            dec = Decoder(
                allphone=os.path.join(md, "en-us-phone.lm.bin"),
                lm=None,
                dict=None,
                beam=1e-20,
                pbeam=1e-20,
                lw=2.0,
                backtrace=True,
                **common,
            )
        self._dec = dec
        self._pending = np.zeros(0, np.int16)
        self._utt_start = 0  # stream sample where the running utterance began
        self._utt_len = 0  # samples decoded in it
        self._done: list[tuple[str, float, float]] = []  # final segments of earlier utterances
        self._current: list[tuple[str, float, float]] = []
        self._dec.start_utt()

    @property
    def segments(self) -> list[tuple[str, float, float]]:
        return self._done + self._current

    def push(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
        self._pending = np.concatenate((self._pending, pcm))
        while self._pending.size >= BLOCK:
            self._block(self._pending[:BLOCK])
            self._pending = self._pending[BLOCK:]

    def flush(self) -> None:
        """End of stream: decode what is left and take the final partial path."""
        if self._pending.size:
            self._block(self._pending)
            self._pending = np.zeros(0, np.int16)

    def _block(self, pcm: np.ndarray) -> None:
        self._dec.process_raw(pcm.tobytes(), False, False)
        self._utt_len += pcm.size
        self._current = self._read_seg()
        if not self.aligned:
            self._maybe_restart()

    def _read_seg(self) -> list[tuple[str, float, float]]:
        off = self._utt_start / SAMPLE_RATE
        segs = []
        for s in self._dec.seg() or ():
            word = s.word
            if word.startswith("ph_"):
                word = word[3:].upper()
            if word == "(NULL)":
                continue
            if word.startswith(("+", "<", "[")):  # fillers, <s>, </s>, <sil>
                word = "SIL"
            segs.append((word, off + s.start_frame * _FRAME_S, off + (s.end_frame + 1) * _FRAME_S))
        return segs

    def _maybe_restart(self) -> None:
        cur = self._current
        long_utt = self._utt_len >= _MAX_UTT_S * SAMPLE_RATE
        quiet = bool(cur) and cur[-1][0] == "SIL" and cur[-1][2] - cur[-1][1] >= _RESTART_SIL_S
        if not (long_utt or (quiet and self._utt_len >= 3 * SAMPLE_RATE)):
            return
        self._dec.end_utt()
        self._done = (self._done + cur)[-400:]  # older phones are never asked for again
        self._current = []
        self._utt_start += self._utt_len
        self._utt_len = 0
        self._dec.start_utt()
