"""The client's pace (pipeline/pacing.py): a generation cancelled while it reads its input
stops reading, even when a message arrives at the same moment."""

from __future__ import annotations

import asyncio

import pytest

from a2v_server.pipeline.pacing import ClientPace
from a2v_server.settings import Settings


async def test_a_cancel_is_not_lost_when_a_message_arrives_with_it():
    """Python 3.11's asyncio.wait_for returned the message that arrived as the reading task
    was cancelled, and the cancel was lost: a generation whose encoder had crashed read on
    and then waited forever for it, and the client never got its INTERNAL error (a 4K
    upload). Here every message is ready at once: the reader must still stop at the cancel."""
    read = 0

    async def messages():
        for k in range(100_000):
            yield k

    async def reader():
        nonlocal read
        async for _ in ClientPace(Settings(listen="127.0.0.1:0")).events(messages()):
            read += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert read < 10  # it stopped at the cancel, not at the end of the input
