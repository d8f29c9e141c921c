"""What a generation sends: audio sources and the whole request stream.

An audio source is any iterable of ``AudioChunk`` messages: a file or bytes sent piece by piece
(``file_audio``, ``bytes_audio``), raw PCM from a live source (``pcm_audio``), optionally
paced like one (``realtime``). ``request_stream`` puts config, visual input and audio in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from a2v.v1 import audio_to_video_pb2 as pb

from .files import check_input_file
from .live_video import LiveVideo
from .options import GenerateOptions

#: a speaker video: a file's bytes or path, or a file sent like a live camera (LiveVideo)
Video = bytes | str | Path | LiveVideo

#: a request message of a client stream (Generate's or Analyze's)
RequestT = TypeVar("RequestT", pb.GenerateRequest, pb.AnalyzeRequest, pb.FacesRequest)

#: bytes per message for file inputs: well under the server's message limit
CHUNK_BYTES = 256 * 1024


def file_pieces(source: bytes | str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``source`` (the data itself, or a file's path) in pieces of ``chunk_bytes``."""
    if isinstance(source, bytes):
        for i in range(0, len(source), chunk_bytes):
            yield source[i : i + chunk_bytes]
        return
    with open(source, "rb") as f:  # a video can be large: never read it whole
        while data := f.read(chunk_bytes):
            yield data


class SizedAudio:
    """Encoded audio sent piece by piece, whose total size is known (``size``): a speaker
    video is then sent in step with it (see ``request_stream``). Iterable once, like the
    generators the other sources are."""

    def __init__(self, source: bytes | str | Path, chunk_bytes: int) -> None:
        self.size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        self._chunks = (pb.AudioChunk(encoded=data) for data in file_pieces(source, chunk_bytes))

    def __iter__(self) -> Iterator[pb.AudioChunk]:
        return self._chunks

    def __next__(self) -> pb.AudioChunk:
        return next(self._chunks)


def file_audio(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> SizedAudio:
    """An audio file, read and sent piece by piece as the chunks are consumed. The file is
    checked now (``files.check_input_file``): a missing, unreadable or plainly wrong file
    raises here, before any stream is opened."""
    check_input_file(path, "audio")
    return SizedAudio(path, chunk_bytes)


def bytes_audio(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> SizedAudio:
    return SizedAudio(data, chunk_bytes)


def pcm_audio(pieces: Iterable[bytes], sample_rate: int, channels: int) -> Iterator[pb.AudioChunk]:
    """Raw s16le PCM from a live source; the format is declared on the first chunk."""
    for i, data in enumerate(pieces):
        fmt = (sample_rate, channels) if i == 0 else (0, 0)
        yield pb.AudioChunk(pcm=pb.PcmChunk(data=data, sample_rate=fmt[0], channels=fmt[1]))


def realtime(chunks: Iterable[pb.AudioChunk], seconds_per_chunk: float) -> Iterator[pb.AudioChunk]:
    """Pace chunks like a live source (one chunk every ``seconds_per_chunk``)."""
    start = time.monotonic()
    for i, chunk in enumerate(chunks):
        delay = start + i * seconds_per_chunk - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield chunk


def file_pcm(path: str | Path, chunk_seconds: float = 0.02) -> tuple[int, int, Iterator[bytes]]:
    """Decode an audio file locally to s16le PCM at its own rate, as a live source would send it.

    Returns ``(sample_rate, channels, pieces)``: ``pieces`` yields ``chunk_seconds`` of
    interleaved PCM each (the last one may be shorter). More than two channels are downmixed
    to stereo. The file is decoded while the pieces are consumed, so memory stays flat.
    """
    import av  # only the live-source helpers need PyAV on the client side

    check_input_file(path, "audio")
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise ValueError(
            f"audio file {str(path)!r}: cannot be decoded here ({error.strerror or error})"
        ) from None
    if not container.streams.audio:
        container.close()
        raise ValueError(f"audio file {str(path)!r}: has no audio stream")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    channels = 1 if stream.codec_context.channels == 1 else 2
    piece_bytes = max(1, round(rate * chunk_seconds)) * 2 * channels

    def pieces() -> Iterator[bytes]:
        resampler = av.AudioResampler(
            format="s16", layout="mono" if channels == 1 else "stereo", rate=rate
        )
        buffer = bytearray()
        try:
            for frame in [*container.decode(stream), None]:
                for out in resampler.resample(frame):
                    buffer += out.to_ndarray().tobytes()
                while len(buffer) >= piece_bytes:
                    yield bytes(buffer[:piece_bytes])
                    del buffer[:piece_bytes]
            if buffer:
                yield bytes(buffer)
        finally:
            container.close()

    return rate, channels, pieces()


def realtime_file_audio(path: str | Path, chunk_seconds: float = 0.02) -> Iterator[pb.AudioChunk]:
    """An audio file sent like a live source: raw PCM pieces of ``chunk_seconds``, paced in
    real time (``a2v generate --realtime``)."""
    rate, channels, pieces = file_pcm(path, chunk_seconds)
    return realtime(pcm_audio(pieces, rate, channels), chunk_seconds)


def image_bytes(image: bytes | str | Path) -> bytes:
    """A portrait given as its bytes, as a path (checked first) or as a binary file object:
    the bytes."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise TypeError("image= takes a file opened in binary mode ('rb'), a path or bytes")
        return data
    if not isinstance(image, str | Path):
        raise TypeError(f"image= takes a path or the file's bytes, not {type(image).__name__}")
    check_input_file(image, "image")
    return Path(image).read_bytes()


def check_audio(audio: object) -> None:
    """``audio`` is a source of AudioChunk messages, not a file name or its bytes (a frequent
    slip: a string is iterable, character by character)."""
    if isinstance(audio, str | Path):
        raise TypeError(
            f"audio= takes AudioChunk messages, not a path: use file_audio({str(audio)!r})"
        )
    if isinstance(audio, bytes | bytearray | memoryview):
        raise TypeError("audio= takes AudioChunk messages, not bytes: use bytes_audio(data)")
    if not isinstance(audio, Iterable | AsyncIterable):
        raise TypeError(
            f"audio= takes an iterable of AudioChunk messages (file_audio, bytes_audio, "
            f"pcm_audio), not {type(audio).__name__}"
        )


def check_visual(image: object, video: Video | None) -> None:
    """Exactly one visual input; a video given as a path is checked (``check_input_file``)."""
    if (image is None) == (video is None):
        raise ValueError(
            "give exactly one visual input: image= (a portrait: talking avatar) or video= (a "
            "speaker video: lipsync)"
        )
    if video is not None and not isinstance(video, bytes | LiveVideo):
        if not isinstance(video, str | Path):
            raise TypeError(f"video= takes a path or the file's bytes, not {type(video).__name__}")
        check_input_file(video, "video")


def generate_config(options: GenerateOptions | None, video: Video | None) -> pb.GenerateConfig:
    """The config message: ``options`` checked (``OptionError``); with a video and no model
    named, the lipsync model (the server's default model takes a portrait)."""
    config = (options or GenerateOptions()).to_proto()
    if video is not None and not config.model:
        config.model = "lipsync"
    return config


def request_stream(
    options: GenerateOptions | pb.GenerateConfig,
    image: bytes | None,
    audio: Iterable[pb.AudioChunk],
    video: Video | None = None,
) -> Iterator[pb.GenerateRequest]:
    """The whole client stream: config, portrait or speaker video (chunked), audio, end.

    A speaker video goes in step with audio of a known size (``file_audio``, ``bytes_audio``):
    each audio piece follows the same share of the video's bytes, so the server has the first
    second of both at once and starts the output before either upload is done (it decodes the
    video as it arrives). With audio of unknown length (a live source) the video goes first.
    The last video piece is marked ``last``. The options and the visual input are checked now
    (``ValueError``, ``OSError``), before the stream is read; the audio is read as the stream
    is."""
    check_visual(image, video)
    config = options if isinstance(options, pb.GenerateConfig) else generate_config(options, video)
    return _requests(config, image, audio, video)


def _requests(
    config: pb.GenerateConfig,
    image: bytes | None,
    audio: Iterable[pb.AudioChunk],
    video: Video | None,
) -> Iterator[pb.GenerateRequest]:
    yield pb.GenerateRequest(config=config)
    if isinstance(video, LiveVideo):
        yield from _live(video, audio)
    elif video is not None:
        yield from _in_step(video, audio)
    else:
        if image is not None:
            for piece in file_pieces(image):
                yield pb.GenerateRequest(image=pb.ImageInput(data=piece))
        for chunk in audio:
            yield pb.GenerateRequest(audio=chunk)
    yield pb.GenerateRequest(end=pb.EndOfInput())


#: video bytes sent with the first audio piece and ahead of the audio's share after it: the
#: container's header and the first frames (the server needs them before the audio matters)
VIDEO_LEAD = 2 * CHUNK_BYTES


def _live(video: LiveVideo, audio: Iterable[pb.AudioChunk]) -> Iterator[pb.GenerateRequest]:
    """Video pieces as they fall due, between the audio pieces (which pace the stream)."""
    pieces = video.pieces()
    pending = next(pieces, None)
    start = None
    while pending is not None and pending[0] <= 0:  # the header and the first frame
        yield pb.GenerateRequest(video=pending[1])
        pending = next(pieces, None)
    for chunk in audio:
        start = time.monotonic() if start is None else start
        elapsed = time.monotonic() - start
        while pending is not None and pending[0] <= elapsed:
            yield pb.GenerateRequest(video=pending[1])
            pending = next(pieces, None)
        yield pb.GenerateRequest(audio=chunk)
    while pending is not None:
        after = next(pieces, None)
        pending[1].last = after is None
        yield pb.GenerateRequest(video=pending[1])
        pending = after


def _in_step(
    video: bytes | str | Path, audio: Iterable[pb.AudioChunk]
) -> Iterator[pb.GenerateRequest]:
    """Video and audio pieces interleaved by their shares of each file (see request_stream)."""
    total = len(video) if isinstance(video, bytes) else Path(video).stat().st_size
    audio_size = getattr(audio, "size", None)
    pieces = file_pieces(video)
    sent = 0

    def video_until(target: float) -> Iterator[pb.GenerateRequest]:
        nonlocal sent
        while sent < total and sent < target:
            piece = next(pieces, b"")
            if not piece:  # the file is shorter than it was: stop here
                break
            sent += len(piece)
            yield pb.GenerateRequest(video=pb.VideoInput(data=piece, last=sent >= total))

    yield from video_until(VIDEO_LEAD if audio_size else total)
    audio_sent = 0
    for chunk in audio:
        if audio_size:
            audio_sent += len(chunk.encoded)
            yield from video_until(total * min(1.0, audio_sent / audio_size) + VIDEO_LEAD)
        yield pb.GenerateRequest(audio=chunk)
    yield from video_until(total)


def analyze_requests(
    config: pb.AnalyzeConfig, audio: Iterable[pb.AudioChunk]
) -> Iterator[pb.AnalyzeRequest]:
    """An Analyze stream: config, the audio, end."""
    yield pb.AnalyzeRequest(config=config)
    for chunk in audio:
        yield pb.AnalyzeRequest(audio=chunk)
    yield pb.AnalyzeRequest(end=pb.EndOfInput())


def analyze_config(
    *,
    transcript: str = "",
    trim: tuple[float, float] | None = None,
    fps: float = 0.0,
    request_id: str = "",
) -> pb.AnalyzeConfig:
    """The AnalyzeConfig of ``analyze``'s keyword arguments (checked by the server)."""
    start, end = trim if trim is not None else (0.0, 0.0)
    return pb.AnalyzeConfig(
        transcript=transcript,
        trim=pb.AudioTrim(start_seconds=start, end_seconds=end),
        fps=fps,
        request_id=request_id,
    )


def faces_requests(
    image: bytes | str | Path | None, video: bytes | str | Path | None
) -> Iterator[pb.FacesRequest]:
    """A ListFaces stream: the image (whole) or the video (in pieces), then end."""
    if (image is None) == (video is None):
        raise ValueError("give image= or video=, one of them")
    if image is not None:
        yield pb.FacesRequest(image=pb.ImageInput(data=image_bytes(image)))
    else:
        assert video is not None
        if isinstance(video, str | Path):
            check_input_file(video, "video")
        for data in file_pieces(video):
            yield pb.FacesRequest(video=pb.VideoInput(data=data))
    yield pb.FacesRequest(end=pb.EndOfInput())


class RequestGuard:
    """The request stream as gRPC reads it, minus gRPC's handling of its failures.

    gRPC reads the requests on its own (a thread, or a task); an exception raised while making
    one (the caller's audio iterable failed, a file could no longer be read) would end the call
    with UNKNOWN "Exception iterating requests!" and lose the exception. Here it is kept in
    ``error`` and the call is cancelled, so that ``generate`` raises the exception itself.
    """

    def __init__(self) -> None:
        self.error: Exception | None = None
        self._call: Any = None
        self._lock = threading.Lock()

    def attach(self, call: Any) -> None:
        """The call reading the requests (cancelled at once if they failed already)."""
        with self._lock:
            self._call = call
            failed = self.error is not None
        if failed:
            call.cancel()

    def failed(self, error: Exception) -> None:
        with self._lock:
            self.error = error
            call = self._call
        if call is not None:
            call.cancel()

    def wrap(self, requests: Iterable[RequestT]) -> Iterator[RequestT]:
        try:
            yield from requests
        except Exception as error:  # kept for the caller, not for gRPC
            self.failed(error)

    async def wrap_async(self, requests: AsyncIterable[RequestT]) -> AsyncIterator[RequestT]:
        try:
            async for request in requests:
                yield request
        except Exception as error:
            self.failed(error)

    def take(self) -> Exception | None:
        """The kept exception, if any (forgotten here: no reference cycle via its traceback)."""
        error, self.error = self.error, None
        return error
