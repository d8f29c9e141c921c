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
from collections.abc import Iterator

import av
import numpy as np

from a2v_server.catalog import MODEL_SAMPLE_RATE as MODEL_RATE
from a2v_server.errors import DecodeCancelled, InvalidInput
from a2v_server.media.audio_blocks import (
    AudioBlock,
    BlockMaker,
    check_trim,
    invalid_audio,
)
from a2v_server.media.chunk_stream import ChunkStream

log = logging.getLogger(__name__)

# bad packets tolerated in a row (an ID3 tag split across reads can produce one) before the
# rest of the file is considered corrupt
_MAX_BAD_PACKETS = 8
# avformat_find_stream_info would otherwise read up to 5 s of audio (all of a short WAV)
# before the first packet is returned; the containers accepted here describe their streams in
# the header (or the first frame), so a minimal probe suffices and keeps decoding streaming.
_OPEN_OPTIONS = {"probesize": "32"}
# FFmpeg's default layouts for raw PCM channel counts (av_channel_layout_default)
_PCM_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
        model_only: bool = False,
    ) -> None:
        check_trim(trim_start, trim_end, max_seconds)
        self._maker = BlockMaker(trim_start, trim_end, max_seconds, output_channels, model_only)
        self._stream = ChunkStream()

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
        except DecodeCancelled:
            log.debug("audio decoding cancelled")
        finally:
            # Whoever stopped iterating, nobody will read again: free the bytes and make later
            # writes no-ops.
            self._stream.cancel()

    def _decode(self) -> Iterator[AudioBlock]:
        head = self._stream.head(16)
        if not head:
            raise invalid_audio("the audio is empty")
        demuxer = detect_audio_format(head)
        if demuxer is None:
            raise invalid_audio("unrecognised format")
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
            raise invalid_audio(f"corrupt or truncated {demuxer} data ({exc.strerror})") from exc
        with container:
            if not container.streams.audio:
                raise invalid_audio("the file contains no audio stream")
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
            raise invalid_audio("no decodable audio found (corrupt file?)")
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
        check_trim(trim_start, trim_end, max_seconds)
        self.sample_rate, self.channels = sample_rate, channels
        self._maker = BlockMaker(trim_start, trim_end, max_seconds, None)
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
