"""One generation driven from the client side, timed: a file upload, or a live (real-time paced)
PCM stream. Both talk to the service through the generated stub so that the moment the config
message leaves can be recorded (the clock for "first chunk" starts there)."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import GenerateOptions, file_audio, request_stream

_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
#: a live source sends this much audio per message
LIVE_CHUNK_SECONDS = 0.02


@dataclass
class FileRun:
    """Client-side timings of one file upload (seconds, from the config message leaving)."""

    first_chunk: float
    total: float
    server_first_chunk: float
    frames: int
    duration: float  # seconds of video
    summary: pb.Summary


def file_run(
    address: str, audio: Path, image: bytes | None, size: str | None, video: Path | None = None
) -> FileRun:
    """Upload ``audio`` as file bytes (as ``a2v generate`` does) with the portrait ``image`` or
    the speaker ``video`` (lipsync), and time the response stream."""
    sent: list[float] = []

    def timed(requests: Iterator[pb.GenerateRequest]) -> Iterator[pb.GenerateRequest]:
        for request in requests:
            if not sent:
                sent.append(time.perf_counter())
            yield request

    model = "lipsync" if video is not None else None
    options = GenerateOptions(resolution=size, **({"model": model} if model else {}))
    first = None
    summary = None
    with grpc.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        requests = request_stream(options, image, file_audio(audio), video)
        for response in stub.Generate(timed(requests)):
            if response.HasField("chunk") and first is None:
                first = time.perf_counter()
            elif response.HasField("summary"):
                summary = response.summary
        end = time.perf_counter()
    if summary is None or first is None:
        raise RuntimeError("the stream ended without media or without a summary")
    return FileRun(
        first_chunk=first - sent[0],
        total=end - sent[0],
        server_first_chunk=summary.timings.first_chunk_seconds,
        frames=summary.frames,
        duration=summary.duration_seconds,
        summary=summary,
    )


@dataclass
class LiveRun:
    """One real-time paced PCM stream: per-fragment latency and durations (seconds)."""

    audio_seconds: float
    first_chunk: float = 0.0  # config sent -> first media chunk
    latencies: list[float] = field(default_factory=list)
    fragment_durations: list[float] = field(default_factory=list)
    tail: float = 0.0  # last audio sent -> summary received
    frames: int = 0
    error: str = ""

    @property
    def worst(self) -> float:
        return max([*self.latencies, self.tail], default=float("inf"))


async def live_run(
    address: str, pcm: bytes, rate: int, image: bytes, size: str, start_at: float | None = None
) -> LiveRun:
    """Send mono s16le ``pcm`` like a microphone: each 20 ms piece leaves when it would have been
    fully captured (``start + (i + 1) * 20 ms``). A fragment's latency is its arrival time minus
    the time the audio at its end (``end_seconds``) was sent."""
    piece = round(rate * LIVE_CHUNK_SECONDS) * 2
    pieces = [pcm[i : i + piece] for i in range(0, len(pcm), piece)]
    run = LiveRun(audio_seconds=len(pcm) / 2 / rate)
    audio_ends: list[float] = []  # audio seconds covered after each piece
    send_times: list[float] = []
    config_sent: list[float] = []
    options = GenerateOptions(resolution=size)

    async def requests() -> AsyncIterator[pb.GenerateRequest]:
        for message in request_stream(options, image, ()):
            if message.HasField("end"):
                break
            if not config_sent:
                config_sent.append(time.perf_counter())
            yield message
        start = time.perf_counter() if start_at is None else start_at
        covered = 0.0
        for i, data in enumerate(pieces):
            delay = start + (i + 1) * LIVE_CHUNK_SECONDS - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            covered += len(data) / 2 / rate
            audio_ends.append(covered)
            send_times.append(time.perf_counter())
            fmt = (rate, 1) if i == 0 else (0, 0)
            yield pb.GenerateRequest(
                audio=pb.AudioChunk(pcm=pb.PcmChunk(data=data, sample_rate=fmt[0], channels=fmt[1]))
            )
        yield pb.GenerateRequest(end=pb.EndOfInput())

    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        try:
            async for response in stub.Generate(requests()):
                now = time.perf_counter()
                if response.HasField("chunk"):
                    chunk = response.chunk
                    if not run.first_chunk:
                        run.first_chunk = now - config_sent[0]
                    if chunk.kind != pb.CHUNK_KIND_FRAGMENT:
                        continue
                    run.fragment_durations.append(chunk.end_seconds - chunk.start_seconds)
                    # the first piece whose audio reaches the fragment's end (1 ms tolerance)
                    i = bisect.bisect_left(audio_ends, chunk.end_seconds - 0.001)
                    if i < len(send_times):
                        run.latencies.append(now - send_times[i])
                elif response.HasField("summary"):
                    run.tail = now - send_times[-1]
                    run.frames = response.summary.frames
        except grpc.aio.AioRpcError as error:
            run.error = f"{error.code().name}: {error.details()}"
    return run


async def live_runs(
    address: str, pcm: bytes, rate: int, image: bytes, size: str, streams: int
) -> list[LiveRun]:
    """``streams`` live streams started together (same clock), each paced in real time."""
    start = time.perf_counter() + 0.5  # let every stream send its config and portrait first
    return await asyncio.gather(
        *(live_run(address, pcm, rate, image, size, start_at=start) for _ in range(streams))
    )
