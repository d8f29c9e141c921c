"""A speaker video sent like a live camera (``a2v generate --realtime --video``).

A camera encoder writes fragmented MP4 as it films; to stand in for one, a video file is
remuxed (its packets copied, nothing re-encoded) into fragmented MP4 with one fragment per
frame, and each fragment becomes due at its frame's presentation time. With ``raw=True`` (a
capture card, a renderer: ``--raw-frames``) the file is decoded here instead and each frame goes
uncompressed, as I420 with its time. ``request_stream`` sends the pieces on the same clock as
real-time audio: the server gets each frame when a camera would have delivered it, together
with the audio of that moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av

from a2v.v1 import audio_to_video_pb2 as pb

from .files import check_input_file

#: fragmented MP4 as a live encoder writes it: the index up front, a fragment per frame
_MOVFLAGS = "frag_every_frame+empty_moov+default_base_moof"


class _Sink:
    """Write-only file object collecting what the muxer writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


class LiveVideo:
    """A video file as timed pieces of a live video: ``pieces()`` yields (seconds from the
    start at which the piece is due, the VideoInput message): fragmented MP4, or uncompressed
    frames with ``raw``. The file is checked now."""

    def __init__(self, path: str | Path, *, raw: bool = False) -> None:
        check_input_file(path, "video")
        self.path = Path(path)
        self.raw = raw

    def pieces(self) -> Iterator[tuple[float, pb.VideoInput]]:
        if self.raw:
            yield from self._frames()
            return
        for due, data in self._fragments():
            yield due, pb.VideoInput(data=data)

    def _frames(self) -> Iterator[tuple[float, pb.VideoInput]]:
        """Decoded frames as I420 (sides cut to even), each with its time from the first."""
        with av.open(str(self.path)) as source:
            if not source.streams.video:
                raise ValueError(f"{self.path}: no video stream")
            stream = source.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            start: float | None = None
            last_us = -1
            for frame in source.decode(stream):
                if frame.pts is None or frame.time_base is None:
                    continue
                t = float(frame.pts * frame.time_base)
                start = t if start is None else start
                time_us = round((t - start) * 1e6)
                if time_us <= last_us:
                    continue  # a repeated timestamp: the frame a player would not show
                w, h = frame.width & ~1, frame.height & ~1
                i420 = frame.reformat(width=w, height=h, format="yuv420p").to_ndarray()
                raw = pb.RawVideoFrame(data=i420.tobytes(), time_us=time_us)
                if last_us < 0:  # the first frame says what they all are
                    raw.format = pb.RAW_PIXEL_FORMAT_I420
                    raw.width, raw.height, raw.frame_rate = w, h, rate
                last_us = time_us
                yield time_us / 1e6, pb.VideoInput(frame=raw)

    def _fragments(self) -> Iterator[tuple[float, bytes]]:
        sink = _Sink()
        with av.open(str(self.path)) as source:
            if not source.streams.video:
                raise ValueError(f"{self.path}: no video stream")
            stream = source.streams.video[0]
            output = av.open(sink, "w", format="mp4", options={"movflags": _MOVFLAGS})
            try:
                copy = output.add_stream_from_template(stream)
                start: float | None = None
                due = 0.0
                for packet in source.demux(stream):
                    if packet.dts is None or packet.pts is None or packet.time_base is None:
                        continue  # the demuxer's flush packet
                    t = float(packet.pts * packet.time_base)
                    start = t if start is None else start
                    due = max(due, t - start)  # presentation order may step back (B-frames)
                    packet.stream = copy
                    output.mux(packet)
                    if data := sink.take():
                        yield due, data
            finally:
                output.close()
        if data := sink.take():
            yield due, data
