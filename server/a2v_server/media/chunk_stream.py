"""A growing in-memory file that FFmpeg reads from a worker thread while bytes still arrive."""

from __future__ import annotations

import os
import threading

from a2v_server.errors import DecodeCancelled


class ChunkStream:
    """Growing in-memory file: the producer appends, FFmpeg reads and seeks, blocking.

    The producer (request stream, event loop side) never blocks; the consumer (PyAV in a
    worker thread) waits until the bytes it asks for arrived. ``cancel()`` wakes it with
    ``DecodeCancelled`` so no thread waits forever for bytes that will never come.
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
            raise DecodeCancelled()

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
