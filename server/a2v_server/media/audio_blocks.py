"""Decoded audio frames -> AudioBlocks: resampled for the model and for the encoder, trimmed to
the sample, channels mixed. Shared by the file and the PCM decoder (audio.py)."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE as MODEL_RATE
from a2v_server.errors import InvalidInput, ResourceExhausted

OUTPUT_RATE = 48000
#: sample rates accepted in audio files
MIN_INPUT_RATE, MAX_INPUT_RATE = 8000, 384000
ACCEPTED_AUDIO_FORMATS = "WAV, MP3, M4A/AAC, Ogg (Opus or Vorbis), FLAC or WebM/Opus"


@dataclass(frozen=True)
class AudioBlock:
    """A piece of decoded audio, in the two forms the pipeline needs."""

    model_pcm: np.ndarray  # float32 mono at MODEL_RATE, in [-1, 1]
    output_pcm: np.ndarray  # float32 planar (channels, n) at OUTPUT_RATE for the AAC encoder


def frame_key(frame: av.AudioFrame) -> tuple:
    """What an AudioResampler is bound to: sample format, channel layout and rate."""
    return frame.format.name, frame.layout.name, frame.sample_rate


def invalid_audio(reason: str) -> InvalidInput:
    return InvalidInput(
        f"could not decode the audio: {reason}; send {ACCEPTED_AUDIO_FORMATS}", field="audio"
    )


def check_trim(trim_start: float, trim_end: float | None, max_seconds: float) -> None:
    if trim_start < 0:
        raise InvalidInput(f"trim_start must be >= 0 s, got {trim_start}", field="trim_start")
    if trim_end is not None and trim_end <= trim_start:
        raise InvalidInput(
            f"trim_end ({trim_end} s) must be after trim_start ({trim_start} s)", field="trim_end"
        )
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")


class Trim:
    """Sample-exact trimming of one stream at one rate (counts, not timestamps)."""

    def __init__(self, rate: int, trim_start: float, trim_end: float | None) -> None:
        self.skip = round(trim_start * rate)
        self.stop = None if trim_end is None else round(trim_end * rate)
        self.seen = 0

    def apply(self, pcm: np.ndarray) -> np.ndarray:
        first, last = self.seen, self.seen + pcm.shape[-1]
        self.seen = last
        lo = min(max(self.skip - first, 0), pcm.shape[-1])
        hi = pcm.shape[-1] if self.stop is None else min(max(self.stop - first, lo), pcm.shape[-1])
        return pcm[..., lo:hi]

    @property
    def done(self) -> bool:
        return self.stop is not None and self.seen >= self.stop


class BlockMaker:
    """Resamples decoded frames into AudioBlocks, trims them and enforces the duration limit."""

    def __init__(
        self,
        trim_start: float,
        trim_end: float | None,
        max_seconds: float,
        output_channels: int | None,
        model_only: bool = False,
    ) -> None:
        """``model_only``: no output-rate audio (Analyze: only the models hear it); the blocks'
        ``output_pcm`` is then empty."""
        if output_channels is not None and output_channels not in (1, 2):
            raise ValueError(f"output_channels must be 1 or 2, got {output_channels}")
        self.output_channels = output_channels
        self.max_samples = round(max_seconds * MODEL_RATE)
        self.max_seconds = max_seconds
        self.model_samples = 0
        self._trims = (
            Trim(MODEL_RATE, trim_start, trim_end),
            Trim(OUTPUT_RATE, trim_start, trim_end),
        )
        self._width = 0
        self._model_only = model_only
        self._model: av.AudioResampler | None = None
        self._output: av.AudioResampler | None = None
        self._input: tuple | None = None

    @property
    def done(self) -> bool:
        """trim_end was reached on both outputs: no need to decode further."""
        return all(t.done for t in self._trims)

    def _setup(self, frame: av.AudioFrame) -> None:
        # Both resamplers keep at most stereo; mono is then the plain channel average.
        # swresample's own stereo->mono matrix sums with 0.707 gains, which raises
        # correlated content such as speech by 3 dB and clips loud recordings.
        channels = min(frame.layout.nb_channels, 2)
        if self.output_channels is None:
            self.output_channels = channels
        self._width = channels
        layout = "mono" if channels == 1 else "stereo"
        self._model = av.AudioResampler(format="fltp", layout=layout, rate=MODEL_RATE)
        if not self._model_only:
            self._output = av.AudioResampler(format="fltp", layout=layout, rate=OUTPUT_RATE)
        self._input = frame_key(frame)

    def _resample(self, frame: av.AudioFrame | None) -> tuple[np.ndarray, np.ndarray]:
        if frame is None or self._input == frame_key(frame):
            return self._run(frame)
        # The first frame, or the stream changed rate or layout mid-way (legal in MP3/ADTS,
        # and common in corrupt files; a resampler takes one input format only): flush what
        # the old resamplers hold and go on with new ones.
        if not MIN_INPUT_RATE <= frame.sample_rate <= MAX_INPUT_RATE:
            # A header declaring 7 Hz would make every sample thousands of output samples.
            raise invalid_audio(
                f"its sample rate {frame.sample_rate} Hz is outside "
                f"{MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz (corrupt header?)"
            )
        head = self._run(None) if self._model is not None else None
        self._setup(frame)
        model, output = self._run(frame)
        if head is not None:
            model = np.concatenate([head[0], model])
            output = np.concatenate([head[1], output], axis=1)
        return model, output

    def _run(self, frame: av.AudioFrame | None) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        assert self._model is not None  # made by the first frame
        try:
            for resampler in (self._model, self._output):
                if resampler is None:  # model_only
                    parts.append(np.zeros((self._width, 0)))
                    continue
                frames = [f.to_ndarray() for f in resampler.resample(frame)]
                parts.append(
                    np.concatenate(frames, axis=1) if frames else np.zeros((self._width, 0))
                )
        except (av.error.FFmpegError, ValueError) as exc:
            # swresample cannot mix some unusual channel layouts (e.g. 9 unnamed channels).
            layout = "" if frame is None else f" ({frame.layout.name}, {frame.sample_rate} Hz)"
            raise invalid_audio(
                f"its channel layout{layout} cannot be converted; send mono or stereo audio"
            ) from exc
        model, output = parts
        model = model.mean(axis=0)
        assert self.output_channels is not None  # set with the resamplers
        if output.shape[0] > self.output_channels:
            output = output.mean(axis=0, keepdims=True)
        elif output.shape[0] < self.output_channels:
            output = np.repeat(output, self.output_channels, axis=0)
        return model, output

    def add(self, frame: av.AudioFrame | None) -> AudioBlock | None:
        """Resample ``frame`` (None flushes the resamplers); return the new audio, if any."""
        if self._model is None and frame is None:
            return None
        model, output = self._resample(frame)
        model_pcm = self._trims[0].apply(model)
        output_pcm = self._trims[1].apply(output)
        self.model_samples += model_pcm.shape[0]
        if self.model_samples > self.max_samples:
            raise ResourceExhausted(
                f"the audio is longer than the limit of {self.max_seconds:g} s; send a shorter "
                "clip or set trim_start/trim_end to select a part of it",
                field="audio",
            )
        if not model_pcm.size and not output_pcm.size:
            return None
        return AudioBlock(
            np.clip(model_pcm, -1.0, 1.0).astype(np.float32, copy=False),
            np.ascontiguousarray(output_pcm, dtype=np.float32),
        )

    def check_not_empty(self) -> None:
        if self.model_samples == 0:
            raise InvalidInput(
                "the audio contains no samples (empty, or trim_start is past its end); "
                "send a recording with speech or adjust trim_start/trim_end",
                field="audio",
            )
