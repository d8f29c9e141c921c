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
from a2v_client.live_video import LiveVideo

_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
#: a live source sends this much audio per message
LIVE_CHUNK_SECONDS = 0.02


@dataclass
class FileRun:
    """Client-side timings of one file upload (seconds, from the config message leaving)."""

    first_chunk: float
    total: float
    server_first_chunk: float
    #: the speaker video's last piece handed to gRPC (0 without a video): for an MP4 whose
    #: index comes after the media nothing can be decoded before it, and issue 12's first
    #: chunk target counts from there
    video_sent: float
    frames: int
    duration: float  # seconds of video
    summary: pb.Summary
    size: tuple[int, int] = (0, 0)  # the output's width and height (Accepted)


def file_run(
    address: str,
    audio: Path,
    image: bytes | None,
    size: str | None,
    video: Path | None = None,
    render_range: tuple[float, float] | None = None,
    speakers: list[tuple[float, float, int]] | None = None,
) -> FileRun:
    """Upload ``audio`` as file bytes (as ``a2v generate`` does) with the portrait ``image`` or
    the speaker ``video`` (lipsync), and time the response stream; ``render_range``: only that
    part of the clip (GenerateConfig.range); ``speakers``: turns (start, end, face index)."""
    sent: list[float] = []

    video_sent = 0.0

    def timed(requests: Iterator[pb.GenerateRequest]) -> Iterator[pb.GenerateRequest]:
        nonlocal video_sent
        for request in requests:
            if not sent:
                sent.append(time.perf_counter())
            yield request
            # (gRPC asks for the next message once it has taken this one)
            if request.HasField("video") and request.video.last:
                video_sent = time.perf_counter() - sent[0]

    model = "lipsync" if video is not None else None
    options = GenerateOptions(
        resolution=size,
        range=render_range,
        speakers=speakers,
        **({"model": model} if model else {}),
    )
    first = None
    summary = None
    size = (0, 0)
    with grpc.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        requests = request_stream(options, image, file_audio(audio), video)
        for response in stub.Generate(timed(requests)):
            if response.HasField("chunk") and first is None:
                first = time.perf_counter()
            elif response.HasField("accepted"):
                size = (response.accepted.width, response.accepted.height)
            elif response.HasField("summary"):
                summary = response.summary
        end = time.perf_counter()
    if summary is None or first is None:
        raise RuntimeError("the stream ended without media or without a summary")
    return FileRun(
        first_chunk=first - sent[0],
        total=end - sent[0],
        server_first_chunk=summary.timings.first_chunk_seconds,
        video_sent=video_sent,
        frames=summary.frames,
        duration=summary.duration_seconds,
        summary=summary,
        size=size,
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
    address: str,
    pcm: bytes,
    rate: int,
    image: bytes | None,
    size: str | None,
    start_at: float | None = None,
    video: Path | None = None,
    raw: bool = False,
) -> LiveRun:
    """Send mono s16le ``pcm`` like a microphone: each 20 ms piece leaves when it would have been
    fully captured (``start + (i + 1) * 20 ms``). A fragment's latency is its arrival time minus
    the time the audio at its end (``end_seconds``) was sent.

    With ``video`` (live lipsync) the speaker video goes like a live camera's on the same clock
    (``LiveVideo``: a fragment per frame, or with ``raw`` an uncompressed frame, sent at its
    time), and a fragment's latency counts from the later of its audio and the video piece of
    its last frame."""
    piece = round(rate * LIVE_CHUNK_SECONDS) * 2
    pieces = [pcm[i : i + piece] for i in range(0, len(pcm), piece)]
    run = LiveRun(audio_seconds=len(pcm) / 2 / rate)
    audio_ends: list[float] = []  # audio seconds covered after each piece
    send_times: list[float] = []
    video_dues: list[float] = []  # video seconds each sent piece completes, and when it left
    video_times: list[float] = []
    config_sent: list[float] = []
    options = GenerateOptions(resolution=size, **({"model": "lipsync"} if video else {}))
    timed = list(LiveVideo(video, raw=raw).pieces()) if video is not None else []

    def video_piece(piece: pb.VideoInput, due: float, last: bool = False) -> pb.GenerateRequest:
        video_dues.append(due)
        video_times.append(time.perf_counter())
        piece.last = last
        return pb.GenerateRequest(video=piece)

    async def requests() -> AsyncIterator[pb.GenerateRequest]:
        for message in request_stream(options, image, (), b"" if video else None):
            if message.HasField("end") or message.HasField("video"):
                break
            if not config_sent:
                config_sent.append(time.perf_counter())
            yield message
        start = time.perf_counter() if start_at is None else start_at
        next_video = 0
        while next_video < len(timed) and timed[next_video][0] <= 0:
            yield video_piece(timed[next_video][1], 0.0)
            next_video += 1
        covered = 0.0
        for i, data in enumerate(pieces):
            delay = start + (i + 1) * LIVE_CHUNK_SECONDS - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elapsed = time.perf_counter() - start
            while next_video < len(timed) and timed[next_video][0] <= elapsed:
                yield video_piece(timed[next_video][1], timed[next_video][0])
                next_video += 1
            covered += len(data) / 2 / rate
            audio_ends.append(covered)
            send_times.append(time.perf_counter())
            fmt = (rate, 1) if i == 0 else (0, 0)
            yield pb.GenerateRequest(
                audio=pb.AudioChunk(pcm=pb.PcmChunk(data=data, sample_rate=fmt[0], channels=fmt[1]))
            )
        for k in range(next_video, len(timed)):
            yield video_piece(timed[k][1], timed[k][0], last=k == len(timed) - 1)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    def video_sent(frame_seconds: float) -> float:
        """When the piece holding the frame at ``frame_seconds`` left (0: no video)."""
        if not video_dues:
            return 0.0
        k = min(bisect.bisect_left(video_dues, frame_seconds - 0.001), len(video_times) - 1)
        return video_times[k]

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
                        last_frame = chunk.end_seconds - 0.04
                        sent = max(send_times[i], video_sent(last_frame))
                        run.latencies.append(now - sent)
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
