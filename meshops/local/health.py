"""Health checks of the local network: which nodes' heartbeats reached the broker."""

from __future__ import annotations

import os
import threading
import time

from meshops.errors import BrokerError, MeshOpsError, ProtocolError
from meshops.local.procs import HOST
from meshops.protocol import EventType, NodeKey, Topics, parse_message

__all__ = ["HeartbeatWatcher"]


class HeartbeatWatcher:
    """Listens on ``ROOT/ctrl`` and records which of the expected nodes sent a heartbeat."""

    def __init__(self, port: int, keys: set[NodeKey]) -> None:
        from meshops.transport import MqttTransport

        self.expected = {key.address for key in keys}
        self.seen: set[str] = set()
        self.changed = threading.Event()
        self._transport = MqttTransport(
            HOST, port, client_id=f"meshops-up-{os.urandom(4).hex()}", on_message=self._on_message
        )
        self._transport.subscribe(Topics().ctrl, qos=1)

    def start(self, deadline: float) -> None:
        try:
            self._transport.start(timeout=max(deadline - time.monotonic(), 1.0))
        except MeshOpsError as exc:
            raise BrokerError(f"cannot watch the local broker for heartbeats: {exc}") from exc

    def stop(self) -> None:
        self._transport.stop(timeout=2.0)

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            message = parse_message(payload)
        except ProtocolError:
            return
        if message.event_type == EventType.HEARTBEAT and message.sender in self.expected:
            self.seen.add(message.sender)
            self.changed.set()
