"""An upload that is read while it is still arriving: a temporary file and blocking readers.

The speaker video's bytes are written here as the client sends them (on the event loop) and
decoded at the same time (in worker threads), so lipsync starts on the first second of a video
instead of after its last byte. Every reader has its own position over the one file (``pread``),
so the streaming decoder and the decoders that seek (loop, bounce) do not disturb each other.

A reader blocks until the bytes it asks for have arrived, the upload is complete, or the spool
is aborted (then it raises ``SpoolAborted``: the generation ended, the decoder stops).

Two kinds of reader, because FFmpeg's demuxers read differently when they may seek:

* ``streaming()``: not seekable, so the demuxer reads the file in order (the MP4 demuxer then
  takes samples in file order and stops its header scan at the first ``mdat``); used for the
  first pass while bytes arrive. Works for an MP4 whose ``moov`` precedes the media, for
  fragmented MP4 and for WebM/Matroska; ``moov_at_end()`` tells the one case it cannot serve.
* ``seekable()``: for the second passes, once the upload is complete.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import threading

from a2v_server.errors import ResourceExhausted


class SpoolAborted(Exception):
    """The upload was abandoned (the generation ended) while a reader waited for it."""


class Spool:
    """The uploaded bytes in a temporary file (deleted on close), readable as they arrive."""

    def __init__(self, max_bytes: int, *, field: str = "video") -> None:
        self._file = tempfile.TemporaryFile(prefix="a2v-upload-")  # noqa: SIM115 - closed in close()
        self._fd = self._file.fileno()
        self._max = max_bytes
        self._field = field
        self._size = 0
        self._complete = False
        self._aborted = False
        self._changed = threading.Condition()

    # --- the writer's side (the event loop) --------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._complete:
            raise ValueError("the upload is complete")
        if self._size + len(data) > self._max:
            raise ResourceExhausted(
                f"the {self._field} is larger than {self._max} bytes: send a shorter or more "
                "compressed clip",
                field=self._field,
            )
        os.pwrite(self._fd, data, self._size)
        with self._changed:
            self._size += len(data)
            self._changed.notify_all()

    def finish(self) -> None:
        """No more bytes follow: readers at the end now see the end of the file."""
        with self._changed:
            self._complete = True
            self._changed.notify_all()

    def abort(self) -> None:
        """Wake every waiting reader with SpoolAborted (the generation is over)."""
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def close(self) -> None:
        self.abort()
        self._file.close()

    @property
    def size(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return self._complete

    # --- the readers' side (worker threads) ---------------------------------------------------
    def streaming(self) -> SpoolReader:
        return SpoolReader(self, seekable=False)

    def seekable(self) -> SpoolReader:
        return SpoolReader(self, seekable=True)

    def wait_for(self, end: int) -> int:
        """Block until ``end`` bytes have arrived or the upload is complete; the bytes there are."""
        with self._changed:
            while self._size < end and not self._complete and not self._aborted:
                self._changed.wait()
            if self._aborted:
                raise SpoolAborted
            return self._size

    def wait_complete(self) -> int:
        with self._changed:
            while not self._complete and not self._aborted:
                self._changed.wait()
            if self._aborted:
                raise SpoolAborted
            return self._size

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer when the upload is shorter); blocks for them."""
        available = self.wait_for(size)
        return self.pread(min(size, available), 0)

    def moov_at_end(self) -> bool:
        """Whether this MP4/MOV keeps its index (``moov``) after the media (``mdat``), which a
        demuxer can only read once the whole file is here. Blocks for the top-level box
        headers it needs (a few reads of 16 bytes)."""
        offset = 0
        while True:
            available = self.wait_for(offset + 16)
            header = self.pread(max(0, min(16, available - offset)), offset)
            if len(header) < 8:
                return False  # ends before either: the decoder reports what is wrong
            size, kind = struct.unpack(">I4s", header[:8])
            if kind == b"moov":
                return False
            if kind == b"mdat":
                return True
            if size == 1 and len(header) >= 16:
                size = struct.unpack(">Q", header[8:16])[0]
            if size < 8:
                return False  # size 0 (to the end) or corrupt: let the demuxer decide
            offset += size


class SpoolReader(io.RawIOBase):
    """A file object over a Spool for PyAV: reads block until the bytes arrive."""

    def __init__(self, spool: Spool, *, seekable: bool) -> None:
        super().__init__()
        self._spool = spool
        self._seekable = seekable
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._spool.wait_complete() - self._pos
        # whatever has arrived beyond the position (at least a byte): the demuxer reads on
        available = self._spool.wait_for(self._pos + 1)
        size = min(size, available - self._pos)
        if size <= 0:
            return b""
        data = self._spool.pread(size, self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if not self._spool.complete:
                # FFmpeg asks for the size while opening; "unknown" (negative) lets it go on
                # with what has arrived instead of waiting for the last byte.
                return -1
            self._pos = self._spool.size + offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = offset
        return self._pos

    def tell(self) -> int:
        return self._pos
