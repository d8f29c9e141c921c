"""The blocking client, ``Client``.

It streams the inputs (config, portrait, audio in chunks, end) and yields the server's
``GenerateResponse`` messages as they arrive::

    with Client("127.0.0.1:50051") as client:
        with open("out.mp4", "wb") as out:
            for response in client.generate(audio=file_audio("speech.wav"), image="face.png"):
                if response.HasField("chunk"):
                    out.write(response.chunk.data)

Failures raise ``A2VClientError`` with the gRPC status code name and the server's message.
``AsyncClient`` (in ``aio.py``) is the asyncio counterpart.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from a2v.v1 import audio_to_video_pb2 as pb

from ._base import (
    CANCEL_TIMEOUT,
    CHANNEL_OPTIONS,
    DEFAULT_ADDRESS,
    HEALTH_TIMEOUT,
    MODELS_TIMEOUT,
    ClientBase,
)
from .aio import AsyncClient
from .connection import TlsFiles, open_channel
from .errors import A2VClientError, client_errors
from .options import GenerateOptions, parse_resolution
from .resume import ResumeTracker
from .sources import (
    CHUNK_BYTES,
    RequestGuard,
    Video,
    analyze_config,
    analyze_requests,
    bytes_audio,
    check_audio,
    faces_requests,
    file_audio,
    file_pcm,
    pcm_audio,
    realtime,
    realtime_file_audio,
    request_stream,
)

# The names besides ``Client`` were defined here before the client was split into modules;
# existing code imports them from ``a2v_client.client``, so they stay importable from here.
__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_ADDRESS",
    "A2VClientError",
    "AsyncClient",
    "Client",
    "GenerateOptions",
    "bytes_audio",
    "file_audio",
    "file_pcm",
    "parse_resolution",
    "pcm_audio",
    "realtime",
    "realtime_file_audio",
    "request_stream",
]


class Client(ClientBase[grpc.Channel]):
    """Blocking client. A context manager; also usable with ``close()``."""

    def _open_channel(
        self, address: str, *, api_key: str | None, tls: TlsFiles | None
    ) -> grpc.Channel:
        return open_channel(address, CHANNEL_OPTIONS, api_key=api_key, tls=tls)

    def generate(
        self,
        *,
        audio: Iterable[pb.AudioChunk],
        image: bytes | str | Path | None = None,
        video: Video | None = None,
        options: GenerateOptions | None = None,
    ) -> Generator[pb.GenerateResponse, None, None]:
        """Stream the inputs, yield the responses. Give ``image`` (talking avatar) or
        ``video`` (lipsync; the model defaults to "lipsync" then).

        The options and the visual input are checked here, before a stream is opened:
        ``OptionError`` / ``InputFormatError`` (both a ``ValueError`` and an ``A2VClientError``
        with code INVALID_ARGUMENT), ``FileNotFoundError`` and other ``OSError``. An exception
        raised by ``audio`` while it is read is raised as it is. The server's errors are
        ``A2VClientError``. Stopping early (``close()``, ``break``) cancels the generation on
        the server."""
        config, still = self._generate_inputs(audio, image, video, options)
        return self._generate(request_stream(config, still, audio, video))

    def _generate(
        self, requests: Iterator[pb.GenerateRequest]
    ) -> Generator[pb.GenerateResponse, None, None]:
        tracker = ResumeTracker(self.address)
        guard = RequestGuard()
        call = self._stub.Generate(guard.wrap(requests), timeout=self._timeout)
        guard.attach(call)
        while True:
            try:
                for response in call:
                    if tracker.accept(response):
                        yield response
                if (failure := guard.take()) is not None:
                    raise failure
                return
            except grpc.RpcError as error:
                if (failure := guard.take()) is not None:
                    raise failure from None
                request = tracker.resume_request(error)  # raises when it cannot resume
            except BaseException:  # the caller stopped early, Ctrl-C, a corrupt chunk: free
                # the server side now (a resumable generation would otherwise go on rendering)
                if (cancel := tracker.cancel_request()) is not None:
                    try:
                        self._stub.Cancel(cancel, timeout=CANCEL_TIMEOUT)
                    except grpc.RpcError:
                        pass  # best effort: the server stops it after resume_detach_seconds
                raise
            finally:
                call.cancel()  # no-op when complete; frees the server side when we stop early
            time.sleep(tracker.backoff())
            call = self._stub.Resume(request, timeout=self._timeout)

    def analyze(
        self,
        *,
        audio: Iterable[pb.AudioChunk],
        transcript: str = "",
        trim: tuple[float, float] | None = None,
        fps: float = 0.0,
        request_id: str = "",
    ) -> pb.AudioAnalysis:
        """What the models hear in ``audio`` (Analyze): kinds, voiced ranges, phones and
        visemes, the jaw-opening curve at ``fps`` (0 = 25), tempo, beats and onsets. ``trim``
        is (start, end) seconds (end 0 = to the end). The server's errors are
        ``A2VClientError``; an exception raised by ``audio`` is raised as it is."""
        check_audio(audio)
        config = analyze_config(transcript=transcript, trim=trim, fps=fps, request_id=request_id)
        return self._one_answer(self._stub.Analyze, analyze_requests(config, audio))

    def list_faces(
        self, *, image: bytes | str | Path | None = None, video: bytes | str | Path | None = None
    ) -> pb.FacesResponse:
        """The faces in a portrait or a speaker video (ListFaces), with the indices and boxes
        that GenerateOptions.face_index and FaceSelector take; a video's are followed through
        it (when each is visible)."""
        requests = faces_requests(image, video)
        first = next(requests)  # checks the arguments and the file now, before a call
        return self._one_answer(self._stub.ListFaces, itertools.chain([first], requests))

    def _one_answer(self, method: Any, requests: Iterator[Any]) -> Any:
        """A call that streams ``requests`` and gets one answer (Analyze, ListFaces): the
        server's errors as A2VClientError, an error of the requests' source as it is."""
        guard = RequestGuard()
        future = method.future(guard.wrap(requests), timeout=self._timeout)
        guard.attach(future)
        try:
            with client_errors(self.address):
                try:
                    return future.result()
                except grpc.RpcError:
                    if (failure := guard.take()) is not None:
                        raise failure from None
                    raise
        finally:
            future.cancel()

    def list_models(self) -> list[pb.ModelInfo]:
        with client_errors(self.address):
            return list(
                self._stub.ListModels(pb.ListModelsRequest(), timeout=MODELS_TIMEOUT).models
            )

    def get_model(self, name: str) -> pb.ModelInfo:
        with client_errors(self.address):
            return self._stub.GetModel(pb.GetModelRequest(name=name), timeout=MODELS_TIMEOUT)

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... of the server (or of one service)."""
        with client_errors(self.address):
            reply = self._health.Check(self._health_request(service), timeout=HEALTH_TIMEOUT)
        return self._serving_status(reply)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
