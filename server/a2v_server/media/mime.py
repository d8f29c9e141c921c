"""The RFC 6381 MIME type of the stream the encoder writes (for Media Source Extensions)."""

from __future__ import annotations

# H.264 levels: (level_idc hex, max macroblocks per frame, max macroblocks per second)
_LEVELS = [
    ("0d", 396, 11880), ("15", 792, 19800), ("16", 1620, 20250), ("1e", 1620, 40500),
    ("1f", 3600, 108000), ("20", 5120, 216000), ("28", 8192, 245760), ("2a", 8704, 522240),
    ("32", 22080, 589824), ("33", 36864, 983040), ("34", 36864, 2073600),
]  # fmt: skip


def mime_type(size: tuple[int, int], fps: float) -> str:
    """H.264 High profile at the level ``size`` and ``fps`` need, with AAC-LC audio."""
    mbs = ((size[0] + 15) // 16) * ((size[1] + 15) // 16)
    level = next((name for name, fs, mbps in _LEVELS if mbs <= fs and mbs * fps <= mbps), "34")
    return f'video/mp4; codecs="avc1.6400{level},mp4a.40.2"'
