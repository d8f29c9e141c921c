"""Reading the server's answers: protobuf enums come back as numbers in Python, these give
their names."""

from __future__ import annotations

from a2v.v1 import audio_to_video_pb2 as pb


def audio_kind_name(summary: pb.Summary | int) -> str:
    """What the audio was judged to be, by name: "speech", "music", "other", or "unknown"
    (the server did not say). Takes a ``Summary`` or its ``audio_kind`` number."""
    value = summary if isinstance(summary, int) else summary.audio_kind
    if value not in pb.AudioKind.values() or value == pb.AUDIO_KIND_UNSPECIFIED:
        return "unknown"
    return pb.AudioKind.Name(value).removeprefix("AUDIO_KIND_").lower()
