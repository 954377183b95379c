"""The dispatcher's queue is bounded by bytes: a flood waits, then is dropped and counted."""

from __future__ import annotations

import threading

import pytest

from meshops.transport import dispatch
from meshops.transport.dispatch import Dispatcher
from tests.waiting import wait_until


def test_a_full_queue_waits_then_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "BLOCK_S", 0.2)
    release = threading.Event()
    seen: list[bytes] = []

    def slow(topic: str, payload: bytes) -> None:
        release.wait(10)
        seen.append(payload)

    dispatcher = Dispatcher("test-dispatch", slow, max_bytes=100)
    dispatcher.start()
    try:
        dispatcher.submit("t", b"a" * 40)  # taken by the handler, which blocks
        wait_until(lambda: dispatcher._queued_bytes == 0, timeout=5)
        dispatcher.submit("t", b"b" * 40)
        dispatcher.submit("t", b"c" * 40)  # 80 bytes queued: still room
        dispatcher.submit("t", b"d" * 40)  # 120 > 100: waits 0.2 s, then dropped
        assert dispatcher.dropped == 1
        release.set()
        wait_until(lambda: len(seen) == 3, timeout=5)
        dispatcher.submit("t", b"e" * 40)  # room again
        wait_until(lambda: len(seen) == 4, timeout=5)
        assert [p[:1] for p in seen] == [b"a", b"b", b"c", b"e"]
        assert dispatcher._queued_bytes == 0
    finally:
        release.set()
        dispatcher.stop(5)


def test_a_waiting_submit_goes_through_when_room_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "BLOCK_S", 5.0)
    release = threading.Event()
    seen: list[bytes] = []
    dispatcher = Dispatcher("test-dispatch", lambda t, p: (release.wait(10), seen.append(p)))
    dispatcher.max_bytes = 50
    dispatcher.start()
    try:
        dispatcher.submit("t", b"a" * 40)
        wait_until(lambda: dispatcher._queued_bytes == 0, timeout=5)
        dispatcher.submit("t", b"b" * 40)
        threading.Timer(0.2, release.set).start()  # the handler catches up meanwhile
        dispatcher.submit("t", b"c" * 40)  # waits for room, then is queued
        wait_until(lambda: len(seen) == 3, timeout=5)
        assert dispatcher.dropped == 0
    finally:
        release.set()
        dispatcher.stop(5)
