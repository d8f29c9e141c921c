"""Tests of a2v_server.media.audio: formats, streaming, trimming, limits and bad input."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from a2v_server.catalog import MODEL_SAMPLE_RATE as MODEL_RATE
from a2v_server.errors import InvalidInput, ResourceExhausted
from a2v_server.media.audio import EncodedAudioDecoder, PcmDecoder, detect_audio_format
from a2v_server.media.audio_blocks import OUTPUT_RATE

# output name -> ffmpeg encoder arguments (the source is a 2 s 440 Hz stereo WAV)
ENCODINGS = {
    "tone.mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "tone.m4a": ["-c:a", "aac"],  # ffmpeg's default: moov at the END of the file
    "tone.opus.ogg": ["-c:a", "libopus"],
    "tone.vorbis.ogg": ["-c:a", "libvorbis"],
    "tone.flac": ["-c:a", "flac"],
    "tone.webm": ["-c:a", "libopus"],
}


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("audio")
    wav = root / "tone.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            "-b",
            "16",
            str(wav),
            "synth",
            "2",
            "sine",
            "440",
            "vol",
            "0.5",
        ],
        check=True,
    )
    files = {"tone.wav": wav.read_bytes()}
    for name, args in ENCODINGS.items():
        out = root / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *args, str(out)], check=True)
        files[name] = out.read_bytes()
    return files


def _decode_all(data: bytes, chunk: int = 4096, **kwargs):
    decoder = EncodedAudioDecoder(**kwargs)
    for i in range(0, len(data), chunk):
        decoder.write(data[i : i + chunk])
    decoder.end()
    blocks = list(decoder.blocks())
    model = np.concatenate([b.model_pcm for b in blocks])
    output = np.concatenate([b.output_pcm for b in blocks], axis=1)
    return decoder, model, output


def _peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


def test_detect_audio_format():
    assert detect_audio_format(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert detect_audio_format(b"ID3\x04") == "mp3"
    assert detect_audio_format(b"\xff\xfb\x90\x00") == "mp3"
    assert detect_audio_format(b"\xff\xf1\x50\x80") == "aac"
    assert detect_audio_format(b"\0\0\0\x20ftypM4A ") == "mov"
    assert detect_audio_format(b"\x1a\x45\xdf\xa3") == "matroska"
    assert detect_audio_format(b"\x89PNG\r\n\x1a\n") is None


@pytest.mark.parametrize("name", ["tone.wav", *ENCODINGS])
def test_formats_decode(tones, name):
    decoder, model, output = _decode_all(tones[name])
    assert model.dtype == np.float32 and output.dtype == np.float32
    assert abs(len(model) / MODEL_RATE - 2.0) <= 0.03
    assert abs(output.shape[1] / OUTPUT_RATE - 2.0) <= 0.03
    assert decoder.output_channels == 2 and output.shape[0] == 2
    assert abs(_peak_hz(model, MODEL_RATE) - 440) < 3
    # identical channels at 0.5 amplitude: the mono mix keeps the level (RMS 0.354)
    rms = float(np.sqrt(np.mean(model[MODEL_RATE // 10 : -MODEL_RATE // 10] ** 2)))
    assert 0.3 < rms < 0.4
    assert np.abs(model).max() <= 1.0


@pytest.mark.parametrize("name", ["tone.wav", "tone.opus.ogg"])
def test_first_block_arrives_before_end(tones, name):
    data = tones[name]
    decoder = EncodedAudioDecoder()
    first_block = threading.Event()
    ended_after_first = []

    def produce():
        for i in range(0, len(data), 1000):
            decoder.write(data[i : i + 1000])
            time.sleep(0.001)
        ended_after_first.append(first_block.is_set())
        decoder.end()

    producer = threading.Thread(target=produce)
    producer.start()
    total = 0
    for block in decoder.blocks():
        first_block.set()
        total += len(block.model_pcm)
    producer.join()
    assert ended_after_first == [True], "no audio was decoded before end()"
    assert abs(total / MODEL_RATE - 2.0) <= 0.03


def test_trim(tones):
    _, model, output = _decode_all(tones["tone.wav"], trim_start=0.5, trim_end=1.25)
    assert len(model) == round(0.75 * MODEL_RATE)
    assert output.shape[1] == round(0.75 * OUTPUT_RATE)
    _, model, _ = _decode_all(tones["tone.flac"], trim_start=1.5)
    assert abs(len(model) / MODEL_RATE - 0.5) <= 0.01
    with pytest.raises(InvalidInput, match="no samples"):
        _decode_all(tones["tone.wav"], trim_start=5.0)
    with pytest.raises(InvalidInput):
        EncodedAudioDecoder(trim_start=1.0, trim_end=0.5)


def test_mono_output_channels(tones):
    decoder, _, output = _decode_all(tones["tone.mp3"], output_channels=1)
    assert decoder.output_channels == 1 and output.shape[0] == 1


@pytest.mark.parametrize("name", ["tone.wav", "tone.mp3"])
def test_model_only_gives_the_same_model_audio_and_no_output(tones, name):
    """Analyze's decoding: the models' audio as Generate's, without the output-rate audio."""
    _, model, _ = _decode_all(tones[name], trim_start=0.25)
    _, only, output = _decode_all(tones[name], trim_start=0.25, model_only=True)
    assert np.array_equal(model, only) and output.shape[1] == 0


def test_max_seconds(tones):
    with pytest.raises(ResourceExhausted):
        _decode_all(tones["tone.opus.ogg"], max_seconds=1.0)


def test_bad_input_is_invalid(tones):
    rng = np.random.default_rng(0)
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200)
    cases = {
        "empty": b"",
        "garbage": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "png": png,
        "wav header cut": tones["tone.wav"][:30],
        "ogg header cut": tones["tone.opus.ogg"][:100],
        "m4a without moov": tones["tone.m4a"][:5000],
        "riff garbage": b"RIFF\0\0\0\0WAVE" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
    }
    for name, data in cases.items():
        with pytest.raises(InvalidInput) as err:
            _decode_all(data)
        assert err.value.field == "audio", name
        assert "could not decode the audio" in err.value.message, name
        assert "WAV, MP3" in err.value.message, name


def test_corrupt_tail_keeps_decoded_audio(tones):
    rng = np.random.default_rng(2)
    data = tones["tone.mp3"][:16000] + rng.integers(0, 256, 8000, dtype=np.uint8).tobytes()
    _, model, _ = _decode_all(data, chunk=1000)
    assert 0.5 < len(model) / MODEL_RATE < 2.0


def test_cancel_unblocks_a_waiting_consumer(tones):
    decoder = EncodedAudioDecoder()
    decoder.write(tones["tone.opus.ogg"][:3000])  # end() is never called
    got = []
    worker = threading.Thread(target=lambda: got.extend(decoder.blocks()))
    worker.start()
    time.sleep(0.2)
    assert worker.is_alive()  # waiting for more bytes
    decoder.cancel()
    worker.join(timeout=5)
    assert not worker.is_alive()
    decoder.write(b"ignored after cancel")


def test_consumer_stopping_early_releases_the_decoder(tones):
    decoder = EncodedAudioDecoder()
    decoder.write(tones["tone.wav"][:100_000])
    blocks = decoder.blocks()
    assert len(next(blocks).model_pcm) > 0
    blocks.close()  # the consumer gives up; the producer may still be writing
    decoder.write(tones["tone.wav"][100_000:])
    decoder.end()


def _pcm_bytes(rate: int, channels: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    waves = [np.sin(2 * np.pi * (440 + 220 * c) * t) for c in range(channels)]
    return (np.stack(waves, axis=1) * 12000).astype("<i2").tobytes()


def test_pcm_odd_chunks_equal_one_shot():
    data = _pcm_bytes(22050, 2, 1.0)
    one = PcmDecoder(22050, 2)
    reference = one.decode(data) + one.flush()
    chunked = PcmDecoder(22050, 2)
    blocks, pos, rng = [], 0, np.random.default_rng(3)
    while pos < len(data):
        size = int(rng.integers(1, 2500))  # odd sizes split samples and channels
        blocks += chunked.decode(data[pos : pos + size])
        pos += size
    blocks += chunked.flush()
    for attr in ("model_pcm", "output_pcm"):
        a = np.concatenate([getattr(b, attr) for b in reference], axis=-1)
        b = np.concatenate([getattr(b, attr) for b in blocks], axis=-1)
        assert a.shape == b.shape and np.array_equal(a, b)
    model = np.concatenate([b.model_pcm for b in blocks])
    assert len(model) == MODEL_RATE
    assert abs(_peak_hz(model, MODEL_RATE) - 440) < 3 or abs(_peak_hz(model, MODEL_RATE) - 660) < 3


def test_pcm_trim_and_validation():
    decoder = PcmDecoder(16000, 1, trim_start=0.25, trim_end=0.75)
    blocks = decoder.decode(_pcm_bytes(16000, 1, 1.0)) + decoder.flush()
    assert sum(len(b.model_pcm) for b in blocks) == 8000
    for rate, channels in [(4000, 1), (400_000, 1), (16000, 0), (16000, 9)]:
        with pytest.raises(InvalidInput):
            PcmDecoder(rate, channels)
