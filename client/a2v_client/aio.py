"""The asyncio client, ``AsyncClient``: ``Client``'s methods as coroutines, and ``generate`` as
an async iterator whose audio may come from an async iterable (a live source)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from a2v.v1 import audio_to_video_pb2 as pb

from . import aio_writes
from ._base import CANCEL_TIMEOUT, CHANNEL_OPTIONS, HEALTH_TIMEOUT, MODELS_TIMEOUT, ClientBase
from .connection import TlsFiles, open_aio_channel
from .errors import client_errors
from .options import GenerateOptions
from .resume import ResumeTracker
from .sources import (
    RequestGuard,
    Video,
    analyze_config,
    analyze_requests,
    check_audio,
    faces_requests,
    request_stream,
)

# A refusal that races a write reaches the caller as the server's status, not as INTERNAL
# "Internal error from Core" (grpc/grpc#36066; see aio_writes).
aio_writes.install()


class AsyncClient(ClientBase[grpc.aio.Channel]):
    """asyncio client; audio may be a plain or an async iterable (a live source)."""

    def _open_channel(
        self, address: str, *, api_key: str | None, tls: TlsFiles | None
    ) -> grpc.aio.Channel:
        return open_aio_channel(address, CHANNEL_OPTIONS, api_key=api_key, tls=tls)

    def generate(
        self,
        *,
        audio: Iterable[pb.AudioChunk] | AsyncIterable[pb.AudioChunk],
        image: bytes | str | Path | None = None,
        video: Video | None = None,
        options: GenerateOptions | None = None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        """As ``Client.generate`` (the same checks, raised here, before a stream is opened);
        ``audio`` may also be an async iterable (a live source). Use with ``async for``."""
        config, still = self._generate_inputs(audio, image, video, options)
        return self._generate(config, still, video, audio)

    async def _generate(
        self,
        config: pb.GenerateConfig,
        image_data: bytes | None,
        video: Video | None,
        audio: Iterable[pb.AudioChunk] | AsyncIterable[pb.AudioChunk],
    ) -> AsyncIterator[pb.GenerateResponse]:
        async def requests() -> AsyncIterator[pb.GenerateRequest]:
            # The server sends headers once the stream is admitted (key and stream limit
            # checked). Writing before then races a refusal, and grpc.aio would report it as
            # INTERNAL instead of UNAUTHENTICATED / RESOURCE_EXHAUSTED (grpc/grpc#36066).
            await call.initial_metadata()
            # Stop writing once the server has ended the call (e.g. rejected the input): a
            # write after that makes grpc.aio replace the server's status with INTERNAL.
            for message in request_stream(config, image_data, (), video):
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

        tracker = ResumeTracker(self.address)
        guard = RequestGuard()
        call = self._stub.Generate(guard.wrap_async(requests()), timeout=self._timeout)
        guard.attach(call)
        while True:
            try:
                async for response in call:
                    if tracker.accept(response):
                        yield response
                if (failure := guard.take()) is not None:
                    raise failure
                return
            except grpc.RpcError as error:
                if (failure := guard.take()) is not None:
                    raise failure from None
                request = tracker.resume_request(error)  # raises when it cannot resume
            except BaseException:  # the caller stopped early, the task was cancelled, ...
                if (failure := guard.take()) is not None:  # or the requests failed
                    raise failure from None
                if (cancel := tracker.cancel_request()) is not None:
                    # fire and forget: awaiting inside GeneratorExit handling is not allowed
                    future = asyncio.ensure_future(
                        self._stub.Cancel(cancel, timeout=CANCEL_TIMEOUT)
                    )
                    future.add_done_callback(lambda f: f.exception())
                raise
            finally:
                call.cancel()
            await asyncio.sleep(tracker.backoff())
            call = self._stub.Resume(request, timeout=self._timeout)

    async def analyze(
        self,
        *,
        audio: Iterable[pb.AudioChunk],
        transcript: str = "",
        trim: tuple[float, float] | None = None,
        fps: float = 0.0,
        request_id: str = "",
    ) -> pb.AudioAnalysis:
        """As ``Client.analyze``."""
        check_audio(audio)
        config = analyze_config(transcript=transcript, trim=trim, fps=fps, request_id=request_id)
        return await self._one_answer(self._stub.Analyze, analyze_requests(config, audio))

    async def list_faces(
        self, *, image: bytes | str | Path | None = None, video: bytes | str | Path | None = None
    ) -> pb.FacesResponse:
        """As ``Client.list_faces``."""
        requests = faces_requests(image, video)
        first = next(requests)  # checks the arguments and the file now, before a call
        return await self._one_answer(self._stub.ListFaces, itertools.chain([first], requests))

    async def _one_answer(self, method: Any, requests: Iterator[Any]) -> Any:
        """As ``Client._one_answer``; writes only once admitted (see ``_generate``)."""
        guard = RequestGuard()

        async def stream() -> AsyncIterator[Any]:
            await call.initial_metadata()
            for message in requests:
                if call.done():
                    return
                yield message
                await asyncio.sleep(0)

        call = method(guard.wrap_async(stream()), timeout=self._timeout)
        guard.attach(call)
        try:
            with client_errors(self.address):
                try:
                    return await call
                except grpc.RpcError:
                    if (failure := guard.take()) is not None:
                        raise failure from None
                    raise
        finally:
            call.cancel()

    async def list_models(self) -> list[pb.ModelInfo]:
        with client_errors(self.address):
            reply = await self._stub.ListModels(pb.ListModelsRequest(), timeout=MODELS_TIMEOUT)
        return list(reply.models)

    async def get_model(self, name: str) -> pb.ModelInfo:
        """As ``Client.get_model``: one model's ``ModelInfo``; NOT_FOUND for an unknown name."""
        with client_errors(self.address):
            return await self._stub.GetModel(pb.GetModelRequest(name=name), timeout=MODELS_TIMEOUT)

    async def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... of the server (or of one service)."""
        with client_errors(self.address):
            reply = await self._health.Check(self._health_request(service), timeout=HEALTH_TIMEOUT)
        return self._serving_status(reply)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
