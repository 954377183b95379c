"""The sending end of reliable streams (design: ``meshops.transport.reliable``).

One named thread per sender sends each stream in order within its window, applies acks
(deleting acknowledged messages from the outbox) and rewinds after a reconnect or when
acks stop progressing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshops.errors import MeshOpsError, TransportError
from meshops.protocol.constants import Topics
from meshops.transport.base import Transport
from meshops.transport.outbox import Outbox
from meshops.transport.reliable.wire import AckDecoder, parse_ack, stream_header

__all__ = ["ReliableSender"]

log = logging.getLogger(__name__)

_BATCH = 256


@dataclass(slots=True)
class _Stream:
    dest: str
    stream_id: str
    next_seq: int  # next seq to assign
    acked: int  # applied to the outbox
    ack_seen: int  # highest valid ack received, maybe not applied yet
    sent: int  # highest seq handed to the transport since the last rewind
    last_progress: float
    timeout: float
    regression_logged: bool = False


class ReliableSender:
    """The sending end of reliable streams (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        outbox: Outbox,
        address: str,
        decode_ack: AckDecoder,
        *,
        topics: Topics | None = None,
        window: int = 1000,
        ack_timeout: float = 1.5,
        max_ack_timeout: float = 30.0,
    ) -> None:
        if window < 1 or ack_timeout <= 0:
            raise ValueError("window and ack_timeout must be positive")
        self._transport = transport
        self._outbox = outbox
        self.address = address
        self._decode_ack = decode_ack
        self._topics = topics or Topics()
        self._window = window
        self._ack_timeout = ack_timeout
        self._max_ack_timeout = max(ack_timeout, max_ack_timeout)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._progress = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.monotonic()
        self._streams: dict[str, _Stream] = {
            s.dest: _Stream(
                s.dest, s.stream_id, s.next_seq, s.acked, s.acked, s.acked, now, ack_timeout
            )
            for s in outbox.streams()
        }
        self.sent = 0
        self.rewinds = 0

    @property
    def ack_topic(self) -> str:
        return self._topics.acks_for(self.address)

    def start(self) -> None:
        """Subscribe to this sender's ack topic and start the sending thread."""
        if self._thread is not None:
            raise TransportError(f"reliable sender {self.address} already started")
        self._transport.subscribe(self.ack_topic, 1, handler=self._on_ack)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"meshops-reliable-send-{self._transport.client_id}", daemon=True
        )
        self._thread.start()
        pending = sum(s.next_seq - 1 - s.acked for s in self._streams.values())
        if pending:
            log.info("%s: resuming %d unacknowledged stream messages", self.address, pending)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending; unacknowledged messages stay in the outbox for the next run."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            raise TransportError(f"{thread.name} did not stop in {timeout} s")
        self._thread = None
        self._transport.unsubscribe(self.ack_topic)

    def send(
        self, dest: str, topic: str, build: Callable[[dict[str, Any]], bytes], *, qos: int = 1
    ) -> int:
        """Store a message for ``dest`` and return its stream seq.

        ``build(header)`` must return the encoded (signed) message with ``header`` merged
        into its body. It runs inside the outbox transaction, so keep it quick. Raises
        ``TransportError`` when the outbox is full.
        """
        stream_id, seq = self._outbox.append_stream(
            dest, topic, lambda sid, n: build(stream_header(sid, n)), qos
        )
        with self._lock:
            s = self._streams.get(dest)
            if s is None or s.stream_id != stream_id:
                stored = self._outbox.stream(dest)
                acked = stored.acked if stored is not None else 0
                s = _Stream(
                    dest, stream_id, seq, acked, acked, acked, time.monotonic(), self._ack_timeout
                )
                self._streams[dest] = s
            s.next_seq = max(s.next_seq, seq + 1)
        self._wake.set()
        return seq

    def unacked(self, dest: str | None = None) -> int:
        """Messages stored but not yet acknowledged by their receiver."""
        with self._lock:
            return sum(
                s.next_seq - 1 - s.acked
                for s in self._streams.values()
                if dest is None or s.dest == dest
            )

    def wait_acked(self, timeout: float, dest: str | None = None) -> bool:
        """Wait until every message (to ``dest``, or to anyone) is acknowledged."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._unacked_locked(dest):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.1))
        return True

    def _unacked_locked(self, dest: str | None) -> bool:
        return any(
            s.next_seq - 1 > s.acked
            for s in self._streams.values()
            if dest is None or s.dest == dest
        )

    # -- acks (dispatcher thread) --

    def _on_ack(self, topic: str, payload: bytes) -> None:
        try:
            sender, ack = self._decode_ack(payload)
            stream_id, seq = parse_ack(ack)
        except (MeshOpsError, ValueError) as exc:
            log.warning("%s: dropped a bad ack on %s: %s", self.address, topic, exc)
            return
        with self._lock:
            s = self._streams.get(sender)
            if s is None or s.stream_id != stream_id:
                log.debug(
                    "%s: ack from %s for an unknown stream %s", self.address, sender, stream_id
                )
                return
            if seq >= s.next_seq:
                log.warning(
                    "%s: %s acked seq %d of stream %s, beyond the last one sent (%d); ignored",
                    self.address,
                    sender,
                    seq,
                    stream_id,
                    s.next_seq - 1,
                )
                return
            if seq == 0 and s.acked > 0 and not s.regression_logged:
                # A receiver that knows nothing of the stream re-acks 0 on every message.
                s.regression_logged = True
                log.warning(
                    "%s: %s acks stream %s at 0 after acking %d: the receiver lost its "
                    "state and the stream cannot progress",
                    self.address,
                    sender,
                    stream_id,
                    s.acked,
                )
                return
            if seq > s.ack_seen:
                s.ack_seen = seq
                self._wake.set()

    # -- sending thread --

    def _run(self) -> None:
        seen_connection = self._transport.connection_count
        while not self._stop.is_set():
            self._wake.wait(min(0.1, self._ack_timeout / 4))
            self._wake.clear()
            try:
                self._apply_acks()
                if not self._transport.connected:
                    continue
                connection = self._transport.connection_count
                if connection != seen_connection:
                    seen_connection = connection
                    self._rewind_all("reconnected")
                with self._lock:
                    streams = list(self._streams.values())
                for s in streams:
                    self._check_progress(s)
                    self._send_window(s)
            except Exception:
                log.exception("%s: reliable sender loop failed; retrying", self.address)
                self._stop.wait(0.5)

    def _apply_acks(self) -> None:
        with self._lock:
            todo = [(s, s.ack_seen) for s in self._streams.values() if s.ack_seen > s.acked]
        for s, upto in todo:
            self._outbox.ack_stream(s.dest, upto)
            with self._lock:
                s.acked = upto
                s.sent = max(s.sent, upto)
                s.last_progress = time.monotonic()
                s.timeout = self._ack_timeout
                self._progress.notify_all()

    def _rewind_all(self, why: str) -> None:
        with self._lock:
            for s in self._streams.values():
                self._rewind(s, why)

    def _rewind(self, s: _Stream, why: str) -> None:
        if s.sent > s.acked:
            self.rewinds += 1
            log.info(
                "%s: stream to %s rewinds from %d to %d (%s)",
                self.address,
                s.dest,
                s.sent,
                s.acked + 1,
                why,
            )
        s.sent = s.acked
        s.last_progress = time.monotonic()

    def _check_progress(self, s: _Stream) -> None:
        with self._lock:
            if s.sent > s.acked and time.monotonic() - s.last_progress > s.timeout:
                self._rewind(s, f"no ack for {s.timeout:.1f} s")
                s.timeout = min(s.timeout * 2, self._max_ack_timeout)

    def _send_window(self, s: _Stream) -> None:
        while not self._stop.is_set() and self._transport.connected:
            with self._lock:
                first, last = s.sent + 1, min(s.acked + self._window, s.next_seq - 1)
                if first > last:
                    return
                if s.sent == s.acked:  # nothing outstanding: the ack clock starts now
                    s.last_progress = time.monotonic()
            batch = self._outbox.stream_messages(s.dest, first, last, _BATCH)
            if not batch:
                return
            for msg in batch:
                self._transport.publish(msg.topic, msg.payload, msg.qos, durable=False)
                self.sent += 1
            assert batch[-1].stream_seq is not None
            with self._lock:
                s.sent = max(s.sent, batch[-1].stream_seq)
