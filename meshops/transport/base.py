"""The surface every transport offers, so the layers above run on MQTT or the in-memory bus.

``MqttTransport`` and ``MemoryTransport`` both satisfy :class:`Transport` structurally;
``ReliableSender`` and ``ReliableReceiver`` only rely on this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = ["MessageHandler", "StartStop", "Transport"]

MessageHandler = Callable[[str, bytes], None]
"""Called as ``handler(topic, payload)`` on the transport's dispatcher thread."""


@runtime_checkable
class Transport(Protocol):
    """Publish/subscribe over a broker, with handlers called on one dispatcher thread."""

    @property
    def client_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def connection_count(self) -> int:
        """Successful connections so far; a change tells the layers above to resend."""
        ...

    def wait_connected(self, timeout: float) -> bool: ...

    def subscribe(
        self, topic: str, qos: int = 1, handler: MessageHandler | None = None
    ) -> None: ...

    def unsubscribe(self, topic: str) -> None: ...

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, *, durable: bool = True
    ) -> None: ...


class StartStop:
    """``with thing:`` starts it and stops it on the way out (brokers and transports)."""

    def start(self, *args: Any, **kwargs: Any) -> Self:
        raise NotImplementedError

    def stop(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
