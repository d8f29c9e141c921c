"""Failover mid-stream (issue 13): the Triton that renders a stream is killed; the server
reopens the sequence on the other Triton from the first frame not yet received, with the
audio again, and the stream goes on. The client sees a pause, not an error, and the file is
the one an undisturbed run gives, byte for byte."""

from __future__ import annotations

import os
import signal

import grpc
from helpers import CLUSTER_KEYS, output_of, triton_requests
from media import PORTRAIT, SPEECH, duration

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_client import GenerateOptions, file_audio, request_stream

AUTH = [("authorization", f"Bearer {CLUSTER_KEYS[0]}")]
FPS = 25


def _kill_the_busy_triton(cluster, model: str, before: list[int], sig=signal.SIGKILL):
    """Signal (SIGKILL) the Triton whose ``model`` served the most requests since ``before``."""
    served = [
        triton_requests(t.url, model) - b for t, b in zip(cluster.tritons, before, strict=True)
    ]
    busy = cluster.tritons[served.index(max(served))]
    os.kill(busy.pid, sig)
    return busy


def _reference(cluster) -> bytes:
    """The file an undisturbed run gives (on the third replica)."""
    return output_of(cluster.addresses[2], _requests(), AUTH)


def _requests():
    options = GenerateOptions(resolution="720p", seed=21)
    return request_stream(options, PORTRAIT.read_bytes(), file_audio(SPEECH))


def test_the_stream_goes_on_when_its_triton_is_killed(cluster):
    reference = _reference(cluster)
    before = [triton_requests(t.url, "talking_avatar") for t in cluster.tritons]
    killed = None
    chunks, sequence_numbers = [], []
    try:
        with grpc.insecure_channel(cluster.addresses[0]) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            responses = []
            for response in stub.Generate(_requests(), metadata=AUTH, timeout=120):
                responses.append(response)
                if response.HasField("chunk"):
                    chunks.append(response.chunk.data)
                    sequence_numbers.append(response.chunk.sequence_number)
                    if len(chunks) == 4 and killed is None:
                        killed = _kill_the_busy_triton(cluster, "talking_avatar", before)
        summary = responses[-1].summary
        assert summary.frames == round(duration(SPEECH) * FPS)
        assert sequence_numbers == list(range(len(sequence_numbers)))  # every chunk once
        assert b"".join(chunks) == reference
        log = "".join(p.read_text() for p in cluster.log_dir.glob("server-0.log"))
        assert "the sequence goes on on" in log
    finally:
        if killed is not None:
            killed.restart()


def test_a_lipsync_stream_goes_on_when_its_triton_is_killed(cluster, pause_speech, tmp_path):
    """Lipsync: the new sequence gets the audio from the start and the frames from the first
    one not yet answered; every frame comes once, in order (each shows its own source frame
    outside the mouth), and the clip lasts as long as the audio."""
    from media import decode_frames
    from test_lipsync import FPS as VIDEO_FPS
    from test_lipsync import _psnr, _speaker_video

    video, source = _speaker_video(duration(pause_speech) + 0.5)

    def requests():
        yield pb.GenerateRequest(
            config=pb.GenerateConfig(model="lipsync", sync_mode=pb.SYNC_MODE_CUT_OFF)
        )
        for i in range(0, len(video), 64 * 1024):
            yield pb.GenerateRequest(video=pb.VideoInput(data=video[i : i + 64 * 1024]))
        for chunk in file_audio(pause_speech):
            yield pb.GenerateRequest(audio=chunk)
        yield pb.GenerateRequest(end=pb.EndOfInput())

    before = [triton_requests(t.url, "lipsync") for t in cluster.tritons]
    killed, chunks = None, []
    try:
        with grpc.insecure_channel(cluster.addresses[1]) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            for response in stub.Generate(requests(), metadata=AUTH, timeout=120):
                if response.HasField("summary"):
                    summary = response.summary
                if response.HasField("chunk"):
                    chunks.append(response.chunk)
                    if len(chunks) == 4 and killed is None:
                        killed = _kill_the_busy_triton(cluster, "lipsync", before)
        assert killed is not None
        assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
        out = tmp_path / "failover.mp4"
        out.write_bytes(b"".join(c.data for c in chunks))
        frames = decode_frames(out)
        assert len(frames) == summary.frames == round(duration(pause_speech) * VIDEO_FPS)
        # outside the face (the top rows), each frame is its own source frame: none repeated,
        # none skipped, across the failover
        assert min(_psnr(f[:120], s[:120]) for f, s in zip(frames, source, strict=False)) > 35
        assert "the sequence goes on on" in (cluster.log_dir / "server-1.log").read_text()
    finally:
        if killed is not None:
            killed.restart()


def test_the_stream_goes_on_when_its_triton_stalls(cluster):
    """A Triton that hangs (SIGSTOP: its connections stay open, nothing comes back): after
    STALL_SECONDS without the frames it owes, the sequence moves to the other Triton."""
    reference = _reference(cluster)
    before = [triton_requests(t.url, "talking_avatar") for t in cluster.tritons]
    stopped, chunks = None, []
    try:
        with grpc.insecure_channel(cluster.addresses[0]) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            for response in stub.Generate(_requests(), metadata=AUTH, timeout=120):
                if response.HasField("chunk"):
                    chunks.append(response.chunk.data)
                    if len(chunks) == 4 and stopped is None:
                        stopped = _kill_the_busy_triton(
                            cluster, "talking_avatar", before, signal.SIGSTOP
                        )
        assert b"".join(chunks) == reference
    finally:
        if stopped is not None:
            os.kill(stopped.pid, signal.SIGCONT)
