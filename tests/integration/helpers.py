"""Small helpers shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import Client, GenerateOptions, file_audio


def render(client: Client, audio: Path, out: Path, image: Path | bytes, **options) -> list:
    """Run one generation; write the chunks to `out`; return every response message."""
    responses = list(
        client.generate(audio=file_audio(audio), image=image, options=GenerateOptions(**options))
    )
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    out.write_bytes(b"".join(c.data for c in chunks))
    return responses


def kinds(responses: list[pb.GenerateResponse]) -> list[str]:
    return [r.WhichOneof("message") for r in responses]
