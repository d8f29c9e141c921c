"""One generation through the running service (``a2v_client.Client``), written to a file."""

from __future__ import annotations

from pathlib import Path

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import Client, GenerateOptions, file_audio

#: every render: square, small enough to keep the whole benchmark in a few minutes
SIZE = "512x512"
SEED = 1


def render(
    client: Client,
    audio: Path,
    out: Path,
    *,
    image: bytes | None = None,
    video: bytes | None = None,
    **options,
) -> pb.Summary:
    """Render ``audio`` onto a portrait (talking_avatar) or a speaker video (lipsync); write the
    concatenated chunks to ``out``; return the summary."""
    options.setdefault("resolution", SIZE)
    # a fixed seed (0 lets the server draw one): the avatar's blinks and head motion, and so the
    # speaker videos rendered from it, are the same in every run, as are the figures on them
    options.setdefault("seed", SEED)
    if video is not None:
        options.setdefault("model", "lipsync")
    summary = None
    with open(out, "wb") as f:
        for msg in client.generate(
            audio=file_audio(audio), image=image, video=video, options=GenerateOptions(**options)
        ):
            if msg.HasField("chunk"):
                f.write(msg.chunk.data)
            elif msg.HasField("summary"):
                summary = msg.summary
    if summary is None:
        raise RuntimeError(f"{out.name}: the stream ended without a summary")
    return summary
