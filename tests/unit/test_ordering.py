"""The Triton stream's bookkeeping as pure classes: frame order and request send times."""

from __future__ import annotations

import numpy as np
import pytest

from a2v_server.errors import ModelFault
from a2v_server.inference.backend import FrameBatch
from a2v_server.inference.ordering import FrameOrder, SendTimes, request_number


def _batch(first: int, n: int) -> FrameBatch:
    return FrameBatch(first, np.zeros((n, 2, 2, 3), np.uint8), np.zeros(n, np.float32))


def _firsts(batches: list[FrameBatch]) -> list[int]:
    return [b.first_index for b in batches]


def test_batches_in_order_go_straight_through():
    order = FrameOrder()
    assert _firsts(order.push(_batch(0, 3))) == [0]
    assert _firsts(order.push(_batch(3, 2))) == [3]
    assert order.expected == 5
    order.finish()


def test_an_early_batch_waits_for_the_ones_before_it():
    order = FrameOrder()
    assert order.push(_batch(5, 2)) == []  # overtook frames 3-4
    assert order.push(_batch(7, 1)) == []
    assert _firsts(order.push(_batch(0, 3))) == [0]
    assert _firsts(order.push(_batch(3, 2))) == [3, 5, 7]  # and the waiting ones follow
    assert order.expected == 8
    order.finish()


def test_a_gap_at_the_end_is_the_models_fault():
    order = FrameOrder()
    order.push(_batch(0, 3))
    order.push(_batch(5, 2))
    with pytest.raises(ModelFault, match=r"skipped frames .*expected frame 3.* from 5"):
        order.finish()


@pytest.mark.parametrize("second", [0, 2])  # a batch handed out already, or half of one
def test_a_repeated_frame_is_the_models_fault(second):
    order = FrameOrder()
    order.push(_batch(0, 3))
    with pytest.raises(ModelFault, match="twice"):
        order.push(_batch(second, 1))


def test_the_same_early_batch_twice_is_the_models_fault():
    order = FrameOrder()
    order.push(_batch(4, 1))
    with pytest.raises(ModelFault, match="frame 4 twice"):
        order.push(_batch(4, 1))


def test_send_times_answer_once_and_forget_requests_that_never_get_an_answer():
    times = SendTimes()
    for n in range(5):
        times.sent(f"77-{n}", float(n))
    assert times.answered("77-2") == 2.0  # requests 0 and 1 made no frames: forgotten too
    assert len(times) == 2
    assert times.answered("77-2") is None  # a second response of the same request
    assert times.answered("77-4") == 4.0
    assert len(times) == 0


def test_request_numbers():
    assert request_number("123-45") == 45
    assert request_number("no-number-x") == -1
