"""Streaming audio decoding: uploaded files arriving in chunks, and raw PCM from live sources.

Both decoders produce ``AudioBlock``s with two resampled versions of the same audio: 16 kHz
mono for the model and 48 kHz (mono or stereo) for the AAC encoder. ``EncodedAudioDecoder``
decodes while bytes are still arriving (the first blocks come before the upload ends) for all
formats except MP4/M4A with the index (moov) at the end, which needs the whole file.

The container is picked from the magic bytes and passed to FFmpeg explicitly: FFmpeg never
probes user bytes, which keeps its many other demuxers (playlists, protocols) out of reach.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE as MODEL_RATE
from a2v_server.errors import InvalidInput, ResourceExhausted

log = logging.getLogger(__name__)

OUTPUT_RATE = 48000
#: sample rates accepted in audio files
MIN_INPUT_RATE, MAX_INPUT_RATE = 8000, 384000
ACCEPTED_AUDIO_FORMATS = "WAV, MP3, M4A/AAC, Ogg (Opus or Vorbis), FLAC or WebM/Opus"
# bad packets tolerated in a row (an ID3 tag split across reads can produce one) before the
# rest of the file is considered corrupt
_MAX_BAD_PACKETS = 8
# avformat_find_stream_info would otherwise read up to 5 s of audio (all of a short WAV)
# before the first packet is returned; the containers accepted here describe their streams in
# the header (or the first frame), so a minimal probe suffices and keeps decoding streaming.
_OPEN_OPTIONS = {"probesize": "32"}
# FFmpeg's default layouts for raw PCM channel counts (av_channel_layout_default)
_PCM_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class AudioBlock:
    """A piece of decoded audio, in the two forms the pipeline needs."""

    model_pcm: np.ndarray  # float32 mono at MODEL_RATE, in [-1, 1]
    output_pcm: np.ndarray  # float32 planar (channels, n) at OUTPUT_RATE for the AAC encoder


def detect_audio_format(head: bytes) -> str | None:
    """FFmpeg demuxer name for a file starting with ``head`` (16 bytes suffice), or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[4:8] == b"ftyp":
        return "mov"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # 12-bit sync, layer 00: ADTS AAC
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # 11-bit sync, layer I-III: MPEG audio
            return "mp3"
    return None


class _Cancelled(Exception):
    """Raised in the decoding thread once the stream was cancelled."""


class _ChunkStream:
    """Growing in-memory file: the producer appends, FFmpeg reads and seeks, blocking.

    The producer (request stream, event loop side) never blocks; the consumer (PyAV in a
    worker thread) waits until the bytes it asks for arrived. ``cancel()`` wakes it with
    ``_Cancelled`` so no thread waits forever for bytes that will never come.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._position = 0
        self._ended = self._cancelled = False
        self._cond = threading.Condition()
        # Only MP4 is opened seekable (its index may follow the samples); streaming formats
        # are read front to back, otherwise e.g. the WAV demuxer skips over the data chunk to
        # look for trailing tags and nothing is decoded before the upload ends.
        self.allow_seek = False

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._ended and not self._cancelled:
                raise ValueError("write() after end()")
            if not self._cancelled:
                self._data += data
                self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._data = bytearray()
            self._cond.notify_all()

    def _wait(self, ready) -> None:
        # Called with the lock held.
        while not (self._cancelled or self._ended or ready()):
            self._cond.wait()
        if self._cancelled:
            raise _Cancelled()

    def head(self, size: int) -> bytes:
        """Block until ``size`` bytes (or the end) arrived; return the first ``size`` bytes."""
        with self._cond:
            self._wait(lambda: len(self._data) >= size)
            return bytes(self._data[:size])

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Returns as soon as any byte is there: FFmpeg asks for its whole 32 KiB buffer but
        # accepts short reads, and waiting to fill it would add latency. Never more than
        # ``size``: PyAV copies the result into a buffer of that size.
        with self._cond:
            self._wait(lambda: len(self._data) > self._position)
            if size is None or size < 0:
                self._wait(lambda: False)
                size = len(self._data)
            chunk = bytes(self._data[self._position : self._position + size])
            self._position += len(chunk)
            return chunk

    def seekable(self) -> bool:
        return self.allow_seek

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # Seeking relative to the end, or past what was received (mov jumping over mdat to a
        # trailing moov), waits for the bytes.
        with self._cond:
            if whence & 0xFFFF == os.SEEK_END:
                self._wait(lambda: False)
                target = len(self._data) + offset
            elif whence & 0xFFFF == os.SEEK_CUR:
                target = self._position + offset
            else:
                target = offset
            if target < 0:
                raise OSError("seek before the start of the stream")
            self._wait(lambda: len(self._data) >= target)
            self._position = target
            return target

    def tell(self) -> int:
        with self._cond:
            return self._position


def _frame_key(frame: av.AudioFrame) -> tuple:
    """What an AudioResampler is bound to: sample format, channel layout and rate."""
    return frame.format.name, frame.layout.name, frame.sample_rate


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(
        f"could not decode the audio: {reason}; send {ACCEPTED_AUDIO_FORMATS}", field="audio"
    )


def _check_trim(trim_start: float, trim_end: float | None, max_seconds: float) -> None:
    if trim_start < 0:
        raise InvalidInput(f"trim_start must be >= 0 s, got {trim_start}", field="trim_start")
    if trim_end is not None and trim_end <= trim_start:
        raise InvalidInput(
            f"trim_end ({trim_end} s) must be after trim_start ({trim_start} s)", field="trim_end"
        )
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")


class _Trim:
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


class _BlockMaker:
    """Resamples decoded frames into AudioBlocks, trims them and enforces the duration limit."""

    def __init__(
        self,
        trim_start: float,
        trim_end: float | None,
        max_seconds: float,
        output_channels: int | None,
    ) -> None:
        if output_channels is not None and output_channels not in (1, 2):
            raise ValueError(f"output_channels must be 1 or 2, got {output_channels}")
        self.output_channels = output_channels
        self.max_samples = round(max_seconds * MODEL_RATE)
        self.max_seconds = max_seconds
        self.model_samples = 0
        self._trims = (
            _Trim(MODEL_RATE, trim_start, trim_end),
            _Trim(OUTPUT_RATE, trim_start, trim_end),
        )
        self._width = 0
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
        self._output = av.AudioResampler(format="fltp", layout=layout, rate=OUTPUT_RATE)
        self._input = _frame_key(frame)

    def _resample(self, frame: av.AudioFrame | None) -> tuple[np.ndarray, np.ndarray]:
        if frame is None or self._input == _frame_key(frame):
            return self._run(frame)
        # The first frame, or the stream changed rate or layout mid-way (legal in MP3/ADTS,
        # and common in corrupt files; a resampler takes one input format only): flush what
        # the old resamplers hold and go on with new ones.
        if not MIN_INPUT_RATE <= frame.sample_rate <= MAX_INPUT_RATE:
            # A header declaring 7 Hz would make every sample thousands of output samples.
            raise _invalid(
                f"its sample rate {frame.sample_rate} Hz is outside "
                f"{MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz (corrupt header?)"
            )
        head = self._run(None) if self._output is not None else None
        self._setup(frame)
        model, output = self._run(frame)
        if head is not None:
            model = np.concatenate([head[0], model])
            output = np.concatenate([head[1], output], axis=1)
        return model, output

    def _run(self, frame: av.AudioFrame | None) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        assert self._model is not None and self._output is not None  # made by the first frame
        try:
            for resampler in (self._model, self._output):
                frames = [f.to_ndarray() for f in resampler.resample(frame)]
                parts.append(
                    np.concatenate(frames, axis=1) if frames else np.zeros((self._width, 0))
                )
        except (av.error.FFmpegError, ValueError) as exc:
            # swresample cannot mix some unusual channel layouts (e.g. 9 unnamed channels).
            layout = "" if frame is None else f" ({frame.layout.name}, {frame.sample_rate} Hz)"
            raise _invalid(
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
        if self._output is None and frame is None:
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


class EncodedAudioDecoder:
    """Decodes an audio file that arrives in chunks (WAV, MP3, M4A/AAC (moov at end too),
    Ogg/Opus, Ogg/Vorbis, FLAC, WebM/Opus).

    ``write()``/``end()``/``cancel()`` are called by the producer; ``blocks()`` runs in a
    worker thread and blocks while waiting for bytes. Call ``cancel()`` if the upload is
    abandoned: the worker stops instead of waiting for bytes forever.
    """

    def __init__(
        self,
        *,
        trim_start: float = 0.0,
        trim_end: float | None = None,
        max_seconds: float = 600.0,
        output_channels: int | None = None,
    ) -> None:
        _check_trim(trim_start, trim_end, max_seconds)
        self._maker = _BlockMaker(trim_start, trim_end, max_seconds, output_channels)
        self._stream = _ChunkStream()

    @property
    def output_channels(self) -> int | None:
        """Channels of ``AudioBlock.output_pcm``; known once the first block was produced."""
        return self._maker.output_channels

    def write(self, data: bytes) -> None:
        """Append received bytes (thread-safe, never waits for the decoder)."""
        self._stream.write(data)

    def end(self) -> None:
        """Mark the end of the file."""
        self._stream.end()

    def cancel(self) -> None:
        """Abandon decoding: a blocked ``blocks()`` returns, later writes are ignored."""
        self._stream.cancel()

    def blocks(self) -> Iterator[AudioBlock]:
        """Yield decoded audio as soon as it is available (blocking; run in a worker thread).

        Raises InvalidInput for unsupported, corrupt or empty audio and ResourceExhausted
        beyond ``max_seconds``. Stops silently after ``cancel()``.
        """
        try:
            yield from self._decode()
        except _Cancelled:
            log.debug("audio decoding cancelled")
        finally:
            # Whoever stopped iterating, nobody will read again: free the bytes and make later
            # writes no-ops.
            self._stream.cancel()

    def _decode(self) -> Iterator[AudioBlock]:
        head = self._stream.head(16)
        if not head:
            raise _invalid("the audio is empty")
        demuxer = detect_audio_format(head)
        if demuxer is None:
            raise _invalid("unrecognised format")
        self._stream.allow_seek = demuxer == "mov"
        try:
            # Tags are user bytes too: undecodable text must not fail the open.
            container = av.open(
                self._stream,
                mode="r",
                format=demuxer,
                options=_OPEN_OPTIONS,
                metadata_errors="replace",
            )
        except av.error.FFmpegError as exc:
            raise _invalid(f"corrupt or truncated {demuxer} data ({exc.strerror})") from exc
        with container:
            if not container.streams.audio:
                raise _invalid("the file contains no audio stream")
            stream = container.streams.audio[0]
            yield from self._demux(container, stream)
            if not self._maker.done:
                block = self._maker.add(None)
                if block is not None:
                    yield block
        self._maker.check_not_empty()

    def _demux(self, container, stream) -> Iterator[AudioBlock]:
        bad = 0
        while bad <= _MAX_BAD_PACKETS:
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError as exc:
                        bad += 1
                        log.debug("skipping a bad audio packet: %s", exc)
                        if bad > _MAX_BAD_PACKETS:
                            break
                        continue
                    bad = 0
                    for frame in frames:
                        block = self._maker.add(frame)
                        if block is not None:
                            yield block
                        if self._maker.done:
                            return
                else:
                    return
            except av.error.FFmpegError as exc:
                # The demuxer lost sync; reading on resynchronises after an isolated bad spot.
                bad += 1
                log.debug("audio demux error: %s", exc)
        if self._maker.model_samples == 0:
            raise _invalid("no decodable audio found (corrupt file?)")
        log.warning(
            "audio stream is corrupt after %.2f s; using the audio decoded so far",
            self._maker.model_samples / MODEL_RATE,
        )


class PcmDecoder:
    """Raw s16le interleaved PCM from a live source."""

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        trim_start: float = 0.0,
        trim_end: float | None = None,
        max_seconds: float = 600.0,
    ) -> None:
        if not 8000 <= sample_rate <= 192000:
            raise InvalidInput(
                f"PCM sample rate {sample_rate} Hz is not supported; use 8000..192000 Hz",
                field="sample_rate",
            )
        if not 1 <= channels <= 8:
            raise InvalidInput(
                f"PCM channel count {channels} is not supported; use 1..8", field="channels"
            )
        _check_trim(trim_start, trim_end, max_seconds)
        self.sample_rate, self.channels = sample_rate, channels
        self._maker = _BlockMaker(trim_start, trim_end, max_seconds, None)
        self._layout = _PCM_LAYOUTS[channels]
        self._carry = b""
        self._samples = 0

    @property
    def output_channels(self) -> int:
        """Channels of ``AudioBlock.output_pcm``: min(channels, 2)."""
        return min(self.channels, 2)

    def decode(self, data: bytes) -> list[AudioBlock]:
        """Decode a chunk of any length (a partial sample is kept for the next chunk)."""
        data = self._carry + data
        frame_bytes = 2 * self.channels
        usable = len(data) - len(data) % frame_bytes
        self._carry = data[usable:]
        if not usable or self._maker.done:
            return []
        pcm = np.frombuffer(data[:usable], dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._samples
        self._samples += usable // frame_bytes
        block = self._maker.add(frame)
        return [] if block is None else [block]

    def flush(self) -> list[AudioBlock]:
        """End of the stream: return the audio still inside the resamplers."""
        if self._carry:
            log.debug("dropping %d bytes of an incomplete PCM sample", len(self._carry))
            self._carry = b""
        block = None if self._maker.done else self._maker.add(None)
        self._maker.check_not_empty()
        return [] if block is None else [block]
