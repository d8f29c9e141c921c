"""In-process regressions for the decoder bugs the hostile corpus found (each was INTERNAL)."""

from __future__ import annotations

import time

import pytest
from hostile_media import flip, wav_header

from a2v_server.catalog import MODEL_SAMPLE_RATE as MODEL_RATE
from a2v_server.errors import InvalidInput
from a2v_server.media.audio import EncodedAudioDecoder


def _decode(data: bytes) -> float:
    decoder = EncodedAudioDecoder()
    decoder.write(data)
    decoder.end()
    return sum(b.model_pcm.size for b in decoder.blocks()) / MODEL_RATE


def test_a_non_utf8_tag_does_not_fail_the_open(media):
    # flipping the MP4 major brand makes it invalid UTF-8; PyAV decoded tags strictly
    assert _decode(flip(media.audio["m4a"], 8)) > 0.5


def test_a_sample_rate_change_midway_keeps_both_parts(media):
    one = _decode(media.audio["mp3"])
    assert _decode(media.audio["mp3"] + media.mp3_44k) == pytest.approx(2 * one, abs=0.1)


@pytest.mark.parametrize("channels", [9, 64])
def test_an_unconvertible_channel_layout_is_invalid_input(channels):
    with pytest.raises(InvalidInput, match="mono or stereo"):
        _decode(wav_header(16000, channels))


@pytest.mark.parametrize("rate", [1, 7, 7999, 10**7])
def test_a_declared_rate_outside_the_range_is_refused_at_once(rate):
    start = time.monotonic()
    with pytest.raises(InvalidInput, match=f"sample rate {rate} Hz"):
        _decode(wav_header(rate, 1))
    assert time.monotonic() - start < 1  # 7 Hz used to upsample ~20 minutes of audio first
