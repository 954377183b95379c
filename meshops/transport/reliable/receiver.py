"""The receiving end of reliable streams (design: ``meshops.transport.reliable``).

Delivers each stream's messages once and in order, remembers the last delivered seq in
SQLite, and sends coalesced cumulative acks from one named thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from meshops.errors import MeshOpsError, TransportError
from meshops.protocol.constants import Topics
from meshops.transport.base import Transport
from meshops.transport.reliable.wire import (
    AckEncoder,
    Decoder,
    DeliverFn,
    ack_body,
    parse_stream_header,
)

__all__ = ["ReliableReceiver"]

log = logging.getLogger(__name__)

_RECEIVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    sender    TEXT    NOT NULL,
    stream_id TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    updated   REAL    NOT NULL,
    PRIMARY KEY (sender, stream_id)
);
"""


class ReliableReceiver:
    """The receiving end of reliable streams (see the module docstring).

    Use :meth:`handle` as the transport handler of the topics stream messages arrive on
    (:meth:`listen` does that), or call :meth:`offer` with an already decoded message.
    Messages without a stream header are delivered as they come.
    """

    def __init__(
        self,
        transport: Transport,
        state_path: str | Path,
        decode: Decoder,
        encode_ack: AckEncoder,
        deliver: DeliverFn,
        *,
        topics: Topics | None = None,
        ack_interval: float = 0.05,
        ack_every: int = 200,
    ) -> None:
        self._transport = transport
        self._decode = decode
        self._encode_ack = encode_ack
        self._deliver = deliver
        self._topics = topics or Topics()
        self._ack_interval = ack_interval
        self._ack_every = ack_every
        self._offer_lock = threading.Lock()  # one message at a time, in order
        self._lock = threading.Lock()  # guards _dirty and _since_ack
        self._dirty: dict[tuple[str, str], int] = {}
        self._since_ack = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state_path = state_path
        try:
            self._db = sqlite3.connect(
                state_path, isolation_level=None, check_same_thread=False, timeout=2.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_RECEIVER_SCHEMA)
            rows = self._db.execute("SELECT sender, stream_id, seq FROM delivered").fetchall()
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open receiver state {state_path}: {exc}") from exc
        self._last: dict[tuple[str, str], int] = {(a, b): n for a, b, n in rows}
        self._closed = False
        self.delivered_count = 0
        self.duplicates = 0
        self.gaps = 0
        self.refused = 0

    def listen(self, topic: str, qos: int = 1) -> None:
        """Subscribe ``topic`` on the transport with :meth:`handle` as its handler."""
        self._transport.subscribe(topic, qos, handler=self.handle)

    def start(self) -> None:
        """Start the ack thread."""
        if self._thread is not None:
            raise TransportError("reliable receiver already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run,
            name=f"meshops-reliable-acks-{self._transport.client_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send the last acks, stop the ack thread and close the state database."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
            if thread.is_alive():
                raise TransportError(f"{thread.name} did not stop in {timeout} s")
            self._thread = None
        with self._offer_lock:
            self._closed = True
            self._db.close()

    def last_delivered(self, sender: str, stream_id: str) -> int:
        with self._offer_lock:
            return self._last.get((sender, stream_id), 0)

    def handle(self, topic: str, payload: bytes) -> None:
        """Decode one message and :meth:`offer` it; undecodable ones are logged and dropped."""
        try:
            sender, body = self._decode(payload)
        except (MeshOpsError, ValueError) as exc:
            self.refused += 1
            log.warning("dropped an undecodable message on %s: %s", topic, exc)
            return
        self.offer(topic, sender, body)

    def offer(self, topic: str, sender: str, body: dict[str, Any]) -> bool:
        """Deliver ``body`` if it is the next message of its stream (or in no stream)."""
        try:
            header = parse_stream_header(body)
        except ValueError as exc:
            self.refused += 1
            log.warning(
                "dropped a message from %s on %s: bad stream header: %s", sender, topic, exc
            )
            return False
        if header is None:
            self._call_deliver(topic, sender, body)
            return True
        stream_id, seq = header
        key = (sender, stream_id)
        with self._offer_lock:
            if self._closed:
                log.debug("receiver stopped; dropped %s/%s#%d", sender, stream_id, seq)
                return False
            last = self._last.get(key, 0)
            if seq != last + 1:
                if seq <= last:
                    self.duplicates += 1
                else:
                    self.gaps += 1
                with self._lock:
                    self._dirty[key] = last
                return False
            self._call_deliver(topic, sender, body)
            try:
                self._db.execute(
                    "INSERT INTO delivered (sender, stream_id, seq, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (sender, stream_id) DO UPDATE "
                    "SET seq = excluded.seq, updated = excluded.updated",
                    (sender, stream_id, seq, time.time()),
                )
            except sqlite3.Error as exc:
                raise TransportError(
                    f"cannot record delivery of {sender}/{stream_id}#{seq}: {exc}"
                ) from exc
            self._last[key] = seq
            self.delivered_count += 1
        with self._lock:
            self._dirty[key] = seq
            self._since_ack += 1
            if self._since_ack >= self._ack_every:
                self._wake.set()
        return True

    def _call_deliver(self, topic: str, sender: str, body: dict[str, Any]) -> None:
        try:
            self._deliver(topic, sender, body)
        except Exception:
            log.exception("deliver() failed on a message from %s on %s; moving on", sender, topic)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._ack_interval)
            self._wake.clear()
            if not self._flush_acks():
                self._stop.wait(0.5)
        self._flush_acks()

    def _flush_acks(self) -> bool:
        """Publish the pending acks; False (logged) if that failed."""
        with self._lock:
            if not self._dirty or not self._transport.connected:
                return True
            dirty, self._dirty = self._dirty, {}
            self._since_ack = 0
        try:
            for (sender, stream_id), seq in dirty.items():
                payload = self._encode_ack(sender, ack_body(stream_id, seq))
                self._transport.publish(self._topics.acks_for(sender), payload, 1, durable=False)
        except Exception:
            log.exception("sending %d acks failed; retrying", len(dirty))
            with self._lock:
                for key, seq in dirty.items():
                    self._dirty[key] = max(seq, self._dirty.get(key, 0))
            return False
        return True
