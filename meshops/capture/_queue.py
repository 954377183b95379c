"""``DropOldestQueue``: the bounded hand-off between a producer thread and a capture's ``read``.

Used by captures whose data is pushed to them (commands, MQTT messages) rather than pulled.
The producer (a command handler, the transport's dispatcher) must never block, so a full
queue drops its *oldest* item and counts it: fresh data is worth more than stale data, and
the counter makes the loss visible. The consumer waits in short steps so that a stop request
is noticed within ``POLL_S`` even when nothing arrives.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ["POLL_S", "DropOldestQueue"]

T = TypeVar("T")

POLL_S = 0.1
"""How often a waiting ``get`` re-checks the stop event."""


class DropOldestQueue(Generic[T]):
    """A thread-safe FIFO of at most ``maxlen`` items; ``put`` never blocks."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._items: deque[T] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.dropped = 0
        """Items discarded so far, because the queue was full or a newer item was taken."""

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T) -> bool:
        """Append ``item``; True when the oldest item was dropped to make room."""
        with self._cond:
            dropped = len(self._items) >= self._maxlen
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, stop: threading.Event, *, latest: bool = False) -> T | None:
        """The next item (or, with ``latest``, the newest, dropping the rest).

        Waits until an item arrives; returns None only once ``stop`` is set.
        """
        with self._cond:
            while not self._items:
                if stop.is_set():
                    return None
                self._cond.wait(POLL_S)
            if latest:
                self.dropped += len(self._items) - 1
                item = self._items.pop()
                self._items.clear()
                return item
            return self._items.popleft()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
