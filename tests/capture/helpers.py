"""Small helpers shared by the capture tests."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from meshops.capture.base import CaptureItem
from tests.waiting import wait_until  # noqa: F401 - re-exported for the tests here

FRAME_W, FRAME_H = 64, 48
_BLOCK = 8
_BITS = 16


class Recorder:
    """A capture's sink and error report, recording both and letting a test wait for them."""

    def __init__(self) -> None:
        self.items: list[CaptureItem] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()

    def sink(self, item: CaptureItem) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def error(self, message: str) -> None:
        with self._cond:
            self.errors.append(message)
            self._cond.notify_all()

    def wait_items(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= count, timeout)

    def wait_errors(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.errors) >= count, timeout)

    @property
    def data(self) -> list[Any]:
        with self._cond:
            return [item.data for item in self.items]


def counter_frame(number: int) -> np.ndarray:
    """A BGR frame carrying ``number`` as 16 black/white 8x8 blocks (survives JPEG)."""
    frame = np.zeros((FRAME_H, FRAME_W, 3), dtype=np.uint8)
    per_row = FRAME_W // _BLOCK
    for bit in range(_BITS):
        if number >> bit & 1:
            y, x = divmod(bit, per_row)
            frame[y * _BLOCK : (y + 1) * _BLOCK, x * _BLOCK : (x + 1) * _BLOCK] = 255
    return frame


def frame_counter(frame: np.ndarray) -> int:
    """The number :func:`counter_frame` put in ``frame``."""
    per_row = FRAME_W // _BLOCK
    number = 0
    for bit in range(_BITS):
        y, x = divmod(bit, per_row)
        block = frame[y * _BLOCK : (y + 1) * _BLOCK, x * _BLOCK : (x + 1) * _BLOCK]
        if block.mean() > 128:
            number |= 1 << bit
    return number
