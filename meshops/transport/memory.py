"""An in-memory bus for unit tests: the transport surface without a broker or sockets.

``MemoryBus`` plays the broker (MQTT wildcard matching included); ``bus.client(...)``
gives a ``MemoryTransport`` with the same publish/subscribe surface as
``MqttTransport``, handlers called on its own named dispatcher thread. A ``drop``
predicate lets tests lose chosen messages, which is how the reliable layer's resending is
tested without a broker. Not for production: nothing is persisted, nothing leaves the
process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self

from meshops.errors import TransportError
from meshops.transport.base import MessageHandler, StartStop
from meshops.transport.dispatch import Dispatcher
from meshops.transport.matching import topic_matches, validate_filter, validate_topic

__all__ = ["MemoryBus", "MemoryTransport"]

DropRule = Callable[[str, bytes], bool]


class MemoryBus:
    """A process-local broker; ``drop(topic, payload)`` returning True loses that message."""

    def __init__(self, *, drop: DropRule | None = None) -> None:
        self.drop = drop
        self._lock = threading.Lock()
        self._clients: dict[str, MemoryTransport] = {}
        self.published = 0
        self.dropped = 0

    def client(self, client_id: str, on_message: MessageHandler | None = None) -> MemoryTransport:
        return MemoryTransport(self, client_id, on_message)

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver to every connected client with a matching subscription (one copy each)."""
        with self._lock:
            self.published += 1
            if self.drop is not None and self.drop(topic, payload):
                self.dropped += 1
                return
            targets = [c for c in self._clients.values() if c._wants(topic)]
        for target in targets:
            target._dispatcher.submit(topic, payload)

    def _attach(self, client: MemoryTransport) -> None:
        with self._lock:
            if client.client_id in self._clients:
                raise TransportError(f"client id {client.client_id!r} already connected")
            self._clients[client.client_id] = client

    def _detach(self, client: MemoryTransport) -> None:
        with self._lock:
            if self._clients.get(client.client_id) is client:
                del self._clients[client.client_id]


class MemoryTransport(StartStop):
    """One client of a :class:`MemoryBus`; see ``MqttTransport`` for the semantics."""

    def __init__(
        self, bus: MemoryBus, client_id: str, on_message: MessageHandler | None = None
    ) -> None:
        self._bus = bus
        self._client_id = client_id
        self._subscriptions: dict[str, int] = {}
        self._sub_lock = threading.Lock()
        self._connected = threading.Event()
        self._connection_count = 0
        self._dispatcher = Dispatcher(f"meshops-memory-{client_id}", on_message)

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def connection_count(self) -> int:
        return self._connection_count

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self, timeout: float = 1.0) -> Self:
        self._bus._attach(self)
        self._dispatcher.start()
        self._connection_count += 1
        self._connected.set()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._connected.clear()
        self._bus._detach(self)
        self._dispatcher.stop(timeout)

    def subscribe(self, topic: str, qos: int = 1, handler: MessageHandler | None = None) -> None:
        validate_filter(topic)
        if handler is not None:
            self._dispatcher.add_route(topic, handler)
        with self._sub_lock:
            self._subscriptions[topic] = qos

    def unsubscribe(self, topic: str) -> None:
        with self._sub_lock:
            self._subscriptions.pop(topic, None)
        self._dispatcher.remove_route(topic)

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, durable: bool = True) -> None:
        """Deliver through the bus; ``qos`` and ``durable`` are accepted and ignored."""
        validate_topic(topic)
        if not self.connected:
            raise TransportError(f"{self._client_id}: memory transport is not started")
        self._bus.publish(topic, bytes(payload))

    def _wants(self, topic: str) -> bool:
        with self._sub_lock:
            return any(topic_matches(f, topic) for f in self._subscriptions)
