"""a2v client library: asyncio (``AsyncClient``) and blocking (``Client``).

Both stream the inputs (config, portrait, audio in chunks, end) and yield the server's
``GenerateResponse`` messages as they arrive::

    with Client("127.0.0.1:50051") as client:
        with open("out.mp4", "wb") as out:
            for response in client.generate(audio=file_audio("speech.wav"), image="face.png"):
                if response.HasField("chunk"):
                    out.write(response.chunk.data)

Failures raise ``A2VClientError`` with the gRPC status code name and the server's message.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc

from .connection import TlsFiles, api_key_from_env, open_aio_channel, open_channel

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: bytes per message for file inputs: well under the server's message limit
CHUNK_BYTES = 256 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    # Spread calls over every address the name resolves to (a headless Kubernetes Service
    # lists each server pod), instead of sending them all down the first connection.
    ("grpc.lb_policy_name", "round_robin"),
]


class A2VClientError(Exception):
    """A failed call: ``code`` is the gRPC status code name, ``message`` the server's text;
    ``retry_delay`` (seconds) when the server said when to try again."""

    def __init__(
        self,
        code: str,
        message: str,
        violations: list[tuple[str, str]] | None = None,
        retry_delay: float | None = None,
    ):
        self.code = code
        self.message = message
        self.violations = violations or []
        self.retry_delay = retry_delay
        super().__init__(f"{code}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> A2VClientError:
        violations = []
        retry_delay = None
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations += [(v.field, v.description) for v in bad.field_violations]
        return cls(error.code().name, error.details() or "", violations, retry_delay)


@dataclass
class GenerateOptions:
    """Client-side view of GenerateConfig (None / 0 = server default)."""

    model: str = ""
    fps: float = 0.0
    resolution: str | None = None  # "480p" | "720p" | "1080p" | "WxH"
    aspect: str | None = None  # "1:1" | "16:9" | "9:16" | "4:3" | "3:4" | "source"
    fit: str | None = None  # "crop" | "pad"
    prompt: str = ""
    trim_start: float = 0.0
    trim_end: float = 0.0
    seed: int = 0
    request_id: str = ""
    transcript: str = ""
    expression_scale: float | None = None
    head_motion_scale: float | None = None
    blink_rate: float | None = None
    include_timeline: bool = False
    sync_mode: str | None = None  # lipsync: bounce | loop | cut_off | silence | remap
    face_index: int | None = None  # lipsync: n-th largest face
    #: let the server keep rendering through a dropped connection; the client resumes
    resumable: bool = True

    def to_proto(self) -> pb.GenerateConfig:
        out = pb.OutputOptions(fps=self.fps)
        if self.resolution:
            out.resolution.CopyFrom(parse_resolution(self.resolution))
        if self.aspect:
            key = "SOURCE" if self.aspect == "source" else self.aspect.replace(":", "_")
            out.aspect_ratio = pb.AspectRatio.Value(f"ASPECT_RATIO_{key}")
        if self.fit:
            out.fit = pb.Fit.Value(f"FIT_{self.fit.upper()}")
        animation = pb.AnimationOptions()
        for name in ("expression_scale", "head_motion_scale", "blink_rate"):
            if getattr(self, name) is not None:
                setattr(animation, name, getattr(self, name))
        config = pb.GenerateConfig(
            model=self.model,
            output=out,
            prompt=self.prompt,
            seed=self.seed,
            request_id=self.request_id,
            trim=pb.AudioTrim(start_seconds=self.trim_start, end_seconds=self.trim_end),
            transcript=self.transcript,
            animation=animation,
            include_timeline=self.include_timeline,
            resumable=self.resumable,
        )
        if self.sync_mode:
            config.sync_mode = pb.SyncMode.Value(f"SYNC_MODE_{self.sync_mode.upper()}")
        if self.face_index is not None:
            config.face.index = self.face_index
        return config


def parse_resolution(text: str) -> pb.Resolution:
    text = text.strip().lower()
    presets = {
        "480p": pb.RESOLUTION_PRESET_480P,
        "720p": pb.RESOLUTION_PRESET_720P,
        "1080p": pb.RESOLUTION_PRESET_1080P,
    }
    if text in presets:
        return pb.Resolution(preset=presets[text])
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"resolution {text!r}: use 480p, 720p, 1080p or WIDTHxHEIGHT")
    return pb.Resolution(size=pb.Size(width=int(width), height=int(height)))


# --- audio sources: iterables of AudioChunk messages ----------------------------------------------
def file_audio(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.AudioChunk]:
    """An audio file, read and sent piece by piece."""
    with open(path, "rb") as f:
        while data := f.read(chunk_bytes):
            yield pb.AudioChunk(encoded=data)


def bytes_audio(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pb.AudioChunk]:
    for i in range(0, len(data), chunk_bytes):
        yield pb.AudioChunk(encoded=data[i : i + chunk_bytes])


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

    container = av.open(str(path))
    if not container.streams.audio:
        container.close()
        raise ValueError(f"{path}: no audio stream")
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


def _image_bytes(image: bytes | str | Path) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def _file_pieces(source: bytes | str | Path) -> Iterator[bytes]:
    if isinstance(source, bytes):
        for i in range(0, len(source), CHUNK_BYTES):
            yield source[i : i + CHUNK_BYTES]
        return
    with open(source, "rb") as f:  # a video can be large: never read it whole
        while data := f.read(CHUNK_BYTES):
            yield data


def request_stream(
    options: GenerateOptions,
    image: bytes | None,
    audio: Iterable[pb.AudioChunk],
    video: bytes | str | Path | None = None,
) -> Iterator[pb.GenerateRequest]:
    """The whole client stream: config, portrait or speaker video (chunked), audio, end."""
    if (image is None) == (video is None):
        raise ValueError("give exactly one visual input: an image or a video")
    yield pb.GenerateRequest(config=options.to_proto())
    if video is not None:
        for piece in _file_pieces(video):
            yield pb.GenerateRequest(video=pb.VideoInput(data=piece))
    else:
        for piece in _file_pieces(image):
            yield pb.GenerateRequest(image=pb.ImageInput(data=piece))
    for chunk in audio:
        yield pb.GenerateRequest(audio=chunk)
    yield pb.GenerateRequest(end=pb.EndOfInput())


class _ResumeTracker:
    """Follows a Generate stream so that a dropped connection can be resumed.

    Remembers the resume token and the last chunk received, checks each chunk's CRC-32, and
    turns a transport failure (no status from the server) into a Resume request. A status the
    server sent (an error of the generation itself) is raised as it is.
    """

    MAX_ATTEMPTS = 5

    def __init__(self) -> None:
        self.token = ""
        self.last: int | None = None
        self.attempts = 0

    def accept(self, response: pb.GenerateResponse) -> bool:
        """False for a response already delivered before a resume (a repeated Accepted)."""
        kind = response.WhichOneof("message")
        if kind == "accepted":
            if self.token:
                return False
            self.token = response.accepted.resume_token
        elif kind == "chunk":
            chunk = response.chunk
            if chunk.crc32 and zlib.crc32(chunk.data) != chunk.crc32:
                raise A2VClientError(
                    "DATA_LOSS", f"chunk {chunk.sequence_number} arrived corrupted (CRC-32)"
                )
            self.last = chunk.sequence_number
        return True

    def resume_request(self, error: grpc.RpcError) -> pb.ResumeRequest:
        server_status = rpc_status.from_call(error) is not None  # type: ignore[arg-type]
        transport = error.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNKNOWN,
        )
        if server_status or not transport or not self.token or self.attempts >= self.MAX_ATTEMPTS:
            raise A2VClientError.from_rpc_error(error) from None
        self.attempts += 1
        request = pb.ResumeRequest(resume_token=self.token)
        if self.last is not None:
            request.last_sequence = self.last
        return request

    def backoff(self) -> float:
        return min(2.0, 0.2 * 2 ** (self.attempts - 1))


# --- blocking client ------------------------------------------------------------------------------
class Client:
    """Blocking client. A context manager; also usable with ``close()``."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = None,
        api_key: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``api_key`` defaults to ``$A2V_API_KEY``; ``tls`` (PEM files) switches TLS on."""
        key = api_key_from_env() if api_key is None else api_key
        self._channel = open_channel(address, _CHANNEL_OPTIONS, api_key=key, tls=tls)
        self._stub = pb_grpc.AudioToVideoStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout

    def generate(
        self,
        *,
        audio: Iterable[pb.AudioChunk],
        image: bytes | str | Path | None = None,
        video: bytes | str | Path | None = None,
        options: GenerateOptions | None = None,
    ) -> Iterator[pb.GenerateResponse]:
        """Stream the inputs, yield the responses. Give ``image`` (talking avatar) or
        ``video`` (lipsync: set ``options.model = "lipsync"``)."""
        still = None if image is None else _image_bytes(image)
        requests = request_stream(options or GenerateOptions(), still, audio, video)
        tracker = _ResumeTracker()
        call = self._stub.Generate(requests, timeout=self._timeout)
        while True:
            try:
                for response in call:
                    if tracker.accept(response):
                        yield response
                return
            except grpc.RpcError as error:
                request = tracker.resume_request(error)  # raises when it cannot resume
            except GeneratorExit:  # the caller stopped early: free the server side now
                if tracker.token:
                    try:
                        self._stub.Cancel(pb.CancelRequest(resume_token=tracker.token), timeout=2)
                    except grpc.RpcError:
                        pass  # best effort: the server stops it after resume_detach_seconds
                raise
            finally:
                call.cancel()  # no-op when complete; frees the server side when we stop early
            time.sleep(tracker.backoff())
            call = self._stub.Resume(request, timeout=self._timeout)

    def list_models(self) -> list[pb.ModelInfo]:
        try:
            return list(self._stub.ListModels(pb.ListModelsRequest(), timeout=10).models)
        except grpc.RpcError as error:
            raise A2VClientError.from_rpc_error(error) from None

    def get_model(self, name: str) -> pb.ModelInfo:
        try:
            return self._stub.GetModel(pb.GetModelRequest(name=name), timeout=10)
        except grpc.RpcError as error:
            raise A2VClientError.from_rpc_error(error) from None

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... of the server (or of one service)."""
        try:
            reply = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.RpcError as error:
            raise A2VClientError.from_rpc_error(error) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- asyncio client -------------------------------------------------------------------------------
class AsyncClient:
    """asyncio client; audio may be a plain or an async iterable (a live source)."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = None,
        api_key: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``api_key`` defaults to ``$A2V_API_KEY``; ``tls`` (PEM files) switches TLS on."""
        key = api_key_from_env() if api_key is None else api_key
        self._channel = open_aio_channel(address, _CHANNEL_OPTIONS, api_key=key, tls=tls)
        self._stub = pb_grpc.AudioToVideoStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout

    async def generate(
        self,
        *,
        audio: Iterable[pb.AudioChunk] | AsyncIterable[pb.AudioChunk],
        image: bytes | str | Path | None = None,
        video: bytes | str | Path | None = None,
        options: GenerateOptions | None = None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        """As ``Client.generate``; ``audio`` may also be an async iterable (a live source)."""
        image_data = None if image is None else _image_bytes(image)
        opts = options or GenerateOptions()

        async def requests() -> AsyncIterator[pb.GenerateRequest]:
            # The server sends headers once the stream is admitted (key and stream limit
            # checked). Writing before then races a refusal, and grpc.aio would report it as
            # INTERNAL instead of UNAUTHENTICATED / RESOURCE_EXHAUSTED (grpc/grpc#36066).
            await call.initial_metadata()
            # Stop writing once the server has ended the call (e.g. rejected the input): a
            # write after that makes grpc.aio replace the server's status with INTERNAL.
            for message in request_stream(opts, image_data, (), video):
                if message.HasField("end") or call.done():
                    break
                yield message
            if isinstance(audio, AsyncIterable):
                async for chunk in audio:
                    if call.done():
                        return
                    yield pb.GenerateRequest(audio=chunk)
            else:
                for chunk in audio:
                    if call.done():
                        return
                    yield pb.GenerateRequest(audio=chunk)
                    await asyncio.sleep(0)
            if not call.done():
                yield pb.GenerateRequest(end=pb.EndOfInput())

        tracker = _ResumeTracker()
        call = self._stub.Generate(requests(), timeout=self._timeout)
        while True:
            try:
                async for response in call:
                    if tracker.accept(response):
                        yield response
                return
            except grpc.RpcError as error:
                request = tracker.resume_request(error)  # raises when it cannot resume
            except (GeneratorExit, asyncio.CancelledError):  # the caller stopped early
                if tracker.token:
                    cancel = self._stub.Cancel(
                        pb.CancelRequest(resume_token=tracker.token), timeout=2
                    )
                    # fire and forget: awaiting inside GeneratorExit handling is not allowed
                    asyncio.ensure_future(cancel).add_done_callback(lambda f: f.exception())
                raise
            finally:
                call.cancel()
            await asyncio.sleep(tracker.backoff())
            call = self._stub.Resume(request, timeout=self._timeout)

    async def list_models(self) -> list[pb.ModelInfo]:
        try:
            return list((await self._stub.ListModels(pb.ListModelsRequest(), timeout=10)).models)
        except grpc.RpcError as error:
            raise A2VClientError.from_rpc_error(error) from None

    async def health(self, service: str = "") -> str:
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError as error:
            raise A2VClientError.from_rpc_error(error) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
