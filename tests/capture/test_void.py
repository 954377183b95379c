"""Void: empty items at CAP_RESOLUTION, for ever."""

from __future__ import annotations

import time

from meshops.capture import VoidCapture

from .conftest import StartCapture


def test_void_yields_empty_items_paced_by_cap_resolution(start_capture: StartCapture) -> None:
    capture, rec = start_capture(VoidCapture, CAP_RESOLUTION=2)
    time.sleep(1.5)
    capture.stop()
    assert 2 <= len(rec.items) <= 5
    assert all(item.data is None and item.image is None for item in rec.items)
    assert not capture.finished.is_set()
    assert not capture.running
    assert rec.errors == []


def test_void_never_finishes_and_stops_promptly(start_capture: StartCapture) -> None:
    capture, rec = start_capture(VoidCapture, CAP_RESOLUTION=50)
    assert rec.wait_items(10, timeout=3)
    assert not capture.finished.is_set()
    started = time.monotonic()
    capture.stop()
    assert time.monotonic() - started < 1.0
    assert not capture.running
