"""Small helpers shared by the transport tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from tests.waiting import wait_until  # noqa: F401 - re-exported for the tests here


class Collector:
    """A message handler that records what it gets and lets a test wait for it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.messages.append((topic, payload))
            self._cond.notify_all()

    @property
    def payloads(self) -> list[bytes]:
        with self._cond:
            return [p for _, p in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)


# Plain JSON codecs standing in for the signed envelope of meshops.protocol.


def json_encoder(sender: str) -> Callable[[str, dict[str, Any]], bytes]:
    def encode(dest: str, body: dict[str, Any]) -> bytes:
        return json.dumps({"SENDER": sender, "DEST": dest, **body}).encode()

    return encode


def json_decode(payload: bytes) -> tuple[str, dict[str, Any]]:
    body = json.loads(payload)
    if not isinstance(body, dict) or not isinstance(body.get("SENDER"), str):
        raise ValueError("not a test message")
    return body.pop("SENDER"), body


class InOrderLog:
    """A ``deliver`` callback that records each body's ``I`` and can wait for a count."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, sender: str, body: dict[str, Any]) -> None:
        with self._cond:
            self.items.append(body["I"])
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self.items)

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= count, timeout)
