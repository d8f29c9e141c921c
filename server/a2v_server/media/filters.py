"""FFmpeg filter graphs run frame by frame (libavfilter through PyAV)."""

from __future__ import annotations

from fractions import Fraction

import av


def filter_chain(frame: av.VideoFrame, *filters: tuple[str, str]) -> av.filter.Graph:
    """A configured FFmpeg filter graph for frames of ``frame``'s size and format through
    ``filters`` ((name, arguments) in order): push a frame, pull the result. One thread: the
    server's decoding shares 2 cores with the encoder and the model."""
    graph = av.filter.Graph()
    graph.threads = 1
    node = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format, time_base=Fraction(1)
    )
    for name, arguments in (*filters, ("buffersink", "")):
        following = graph.add(name, arguments) if arguments else graph.add(name)
        node.link_to(following)
        node = following
    graph.configure()
    return graph
