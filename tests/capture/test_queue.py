"""DropOldestQueue: bounded, never blocks the producer, stoppable consumer."""

from __future__ import annotations

import threading
import time

import pytest

from meshops.capture._queue import DropOldestQueue


def test_full_queue_drops_the_oldest_and_counts() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(3)
    assert [queue.put(i) for i in range(5)] == [False, False, False, True, True]
    assert queue.dropped == 2
    stop = threading.Event()
    assert [queue.get(stop) for _ in range(3)] == [2, 3, 4]


def test_latest_takes_the_newest_and_counts_the_rest_dropped() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(10)
    for i in range(4):
        queue.put(i)
    assert queue.get(threading.Event(), latest=True) == 3
    assert queue.dropped == 3
    assert len(queue) == 0


def test_get_waits_for_an_item_and_returns_none_on_stop() -> None:
    queue: DropOldestQueue[str] = DropOldestQueue(2)
    stop = threading.Event()
    threading.Timer(0.2, queue.put, args=("late",)).start()
    assert queue.get(stop) == "late"
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert queue.get(stop) is None
    assert time.monotonic() - started < 1.0


def test_maxlen_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        DropOldestQueue(0)
