"""What local development chains (embedded and anvil) have in common.

Both start with the same ten pre-funded dev accounts, whose keys are public knowledge
(secrets 1..10, as eth-tester has them): never use them on a real network.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DEV_BALANCE", "DEV_KEYS", "DevChain"]

DEV_KEYS: tuple[bytes, ...] = tuple(i.to_bytes(32, "big") for i in range(1, 11))
DEV_BALANCE = 1_000_000 * 10**18
"""Wei each dev account starts with (one million ether)."""


class DevChain(Protocol):
    """A local chain a test or ``meshops up`` starts, shares by URL and stops."""

    dev_keys: tuple[bytes, ...]

    @property
    def url(self) -> str: ...

    def start(self) -> DevChain: ...

    def stop(self, timeout: float = 5.0) -> None: ...
