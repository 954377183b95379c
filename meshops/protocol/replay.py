"""Replay protection: remember the hashes of messages already accepted.

``parse_message`` consults a guard only after a message's signature verified, so a forger
cannot make a receiver drop a genuine message by sending its hash first. The node keeps a
persistent guard (``meshops.node.store.NodeStore``) so the memory survives a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

__all__ = ["MemoryReplayGuard", "ReplayGuard"]


@runtime_checkable
class ReplayGuard(Protocol):
    """Remembers message hashes; the transport layer provides a persistent (SQLite) one."""

    def check_and_remember(self, msg_hash: str, when: float) -> bool:
        """Record ``msg_hash`` seen at ``when`` (epoch seconds); False if already seen."""
        ...


class MemoryReplayGuard:
    """An in-memory, bounded replay guard: hashes seen in the last ``window_s`` seconds.

    At most ``max_entries`` hashes are kept (oldest dropped first), so memory stays bounded
    under a flood; messages with ``EE_TIMESTAMP`` are also refused once stale, which covers a
    hash pushed out early. Thread-safe.
    """

    def __init__(self, window_s: float = 300.0, max_entries: int = 100_000) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window_s and max_entries must be positive")
        self.window_s = float(window_s)
        self.max_entries = int(max_entries)
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_remember(self, msg_hash: str, when: float) -> bool:
        """True when ``msg_hash`` is new within the window (and now remembered)."""
        with self._lock:
            cutoff = when - self.window_s
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if seen_at >= cutoff:
                    break
                del self._seen[oldest]
            seen_at = self._seen.get(msg_hash)
            if seen_at is not None and seen_at >= cutoff:
                return False
            self._seen[msg_hash] = when
            self._seen.move_to_end(msg_hash)
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
