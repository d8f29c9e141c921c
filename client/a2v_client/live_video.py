"""A speaker video sent like a live camera (``a2v generate --realtime --video``).

A camera encoder writes fragmented MP4 as it films; to stand in for one, a video file is
remuxed (its packets copied, nothing re-encoded) into fragmented MP4 with one fragment per
frame, and each fragment becomes due at its frame's presentation time. ``request_stream`` sends
the pieces on the same clock as real-time audio: the server gets each frame when a camera would
have delivered it, together with the audio of that moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av

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
    """A video file as timed pieces of a live fragmented MP4: ``pieces()`` yields (seconds
    from the start at which the piece is due, bytes). The file is checked now."""

    def __init__(self, path: str | Path) -> None:
        check_input_file(path, "video")
        self.path = Path(path)

    def pieces(self) -> Iterator[tuple[float, bytes]]:
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
