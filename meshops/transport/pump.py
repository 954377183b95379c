"""The outbox pump: one named thread that moves plain durable messages from disk to paho.

Why a thread of its own: publishers only commit to SQLite (fast, and safe across a
crash) and never wait for the network; the pump hands messages to paho in ``seq`` order,
at most ``max_inflight`` unconfirmed at a time, and deletes each one when paho reports
it published: PUBACK for QoS 1, PUBCOMP for QoS 2, written to the socket for QoS 0.

Reconnects: paho keeps unconfirmed QoS 1/2 messages in memory and re-sends them (in
order) after it reconnects, so the pump leaves those alone. QoS 0 packets still queued
when a connection drops are lost (paho marks them ``MQTT_ERR_CONN_LOST``), and a publish
that races a disconnect is refused (``MQTT_ERR_NO_CONN``); both are re-sent from the
outbox, oldest first, once connected again. The race can deliver one message twice,
which is within the at-least-once promise. After a process restart everything still in
the outbox is sent again by the next pump.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from meshops.errors import TransportError
from meshops.transport.outbox import Outbox, OutboxMessage

__all__ = ["OutboxPump"]

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.1
_BATCH = 256


@dataclass(slots=True)
class _InFlight:
    seq: int
    info: mqtt.MQTTMessageInfo


class OutboxPump:
    """Sends an outbox's plain messages through a paho client (see the module docstring)."""

    def __init__(
        self,
        name: str,
        client: mqtt.Client,
        outbox: Outbox,
        *,
        is_connected: Callable[[], bool],
        max_inflight: int,
    ) -> None:
        self.name = name
        self._client = client
        self._outbox = outbox
        self._is_connected = is_connected
        self._max_inflight = max_inflight
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: list[_InFlight] = []
        self._resend: set[int] = set()  # seqs handed to paho but lost; send again first
        self._cursor = 0  # highest seq ever handed to paho by this pump
        self._idle = threading.Event()
        self.sent = 0
        self.confirmed = 0

    def wake(self) -> None:
        """Something changed (a new message, an acknowledgement, a reconnect)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            raise TransportError(f"outbox pump {self.name} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop pumping; unconfirmed messages stay in the outbox for the next run."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            raise TransportError(f"outbox pump thread {self.name} did not stop in {timeout} s")
        self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every plain message in the outbox is confirmed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._outbox.count_plain() == 0:
                return True
            self._idle.clear()
            self._wake.set()
            self._idle.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return self._outbox.count_plain() == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_IDLE_WAIT_S)
            self._wake.clear()
            try:
                self._reap()
                if self._is_connected():
                    self._fill()
            except TransportError:
                log.exception("%s: outbox error; retrying", self.name)
                self._stop.wait(0.5)
            self._idle.set()

    def _reap(self) -> None:
        """Delete confirmed messages; queue lost ones to send again."""
        if not self._inflight:
            return
        done: list[int] = []
        keep: list[_InFlight] = []
        for entry in self._inflight:
            rc = entry.info.rc
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._resend.add(entry.seq)
            elif entry.info.is_published():
                done.append(entry.seq)
            else:
                keep.append(entry)
        self._inflight = keep
        if done:
            self._outbox.delete(done)
            self.confirmed += len(done)

    def _fill(self) -> None:
        """Hand messages to paho, lost ones first, until the window is full."""
        while len(self._inflight) < self._max_inflight and not self._stop.is_set():
            room = min(_BATCH, self._max_inflight - len(self._inflight))
            if self._resend:
                wanted = sorted(self._resend)[:room]
                self._resend.difference_update(wanted)
                # missing ones were confirmed through an earlier copy
                batch = self._outbox.get(wanted)
                if not batch:
                    continue
            else:
                batch = self._outbox.pending(after=self._cursor, limit=room)
                if not batch:
                    return
            for i, msg in enumerate(batch):
                if not self._send(msg):
                    self._resend.update(m.seq for m in batch[i:])
                    self._cursor = max(self._cursor, batch[-1].seq)
                    return

    def _send(self, msg: OutboxMessage) -> bool:
        info = self._client.publish(msg.topic, msg.payload, msg.qos)
        self._cursor = max(self._cursor, msg.seq)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("%s: publish of outbox seq %d refused (%s)", self.name, msg.seq, info.rc)
            return False
        self._inflight.append(_InFlight(msg.seq, info))
        self.sent += 1
        return True
