"""The persisted outbox: messages wait on disk until someone confirms them.

Why SQLite: a node that loses its broker, or is restarted, must not lose what it had
promised to send. A message is committed here *before* it is handed to the network and
deleted only when it is confirmed: by the broker (PUBACK/PUBCOMP) for plain durable
messages, by the receiver for reliable-stream messages (see ``reliable.py``).

One table holds both kinds, ordered by ``seq`` (never reused, thanks to AUTOINCREMENT):
plain rows have ``dest`` NULL; stream rows carry ``dest`` and their ``stream_seq``. The
``streams`` table keeps, per destination, the random stream id, the next stream seq to
assign and the highest seq the receiver acknowledged, so a restarted sender resumes the
same stream where the receiver left it.

The database runs in WAL mode with ``synchronous=NORMAL`` (a commit survives a process
crash; the last few may be lost on power failure) and ``locking_mode=EXCLUSIVE``: one
process owns an outbox at a time, a second one gets a clear ``TransportError``. One
connection serves all threads behind a lock; every call is short.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from meshops.errors import TransportError

__all__ = ["Outbox", "OutboxMessage", "StreamState"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGES = 100_000
DEFAULT_MAX_BYTES = 1 << 30
_SCHEMA_VERSION = 1
_CHUNK = 500  # SQLite host parameters per statement, well under its limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    qos        INTEGER NOT NULL,
    created    REAL    NOT NULL,
    dest       TEXT,
    stream_seq INTEGER
);
CREATE INDEX IF NOT EXISTS messages_plain ON messages(seq) WHERE dest IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS messages_stream
    ON messages(dest, stream_seq) WHERE dest IS NOT NULL;
CREATE TABLE IF NOT EXISTS streams (
    dest      TEXT PRIMARY KEY,
    stream_id TEXT    NOT NULL,
    next_seq  INTEGER NOT NULL,
    acked     INTEGER NOT NULL
);
"""

_COLUMNS = "seq, topic, payload, qos, created, dest, stream_seq"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One stored message; ``dest``/``stream_seq`` are set for reliable-stream messages."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    created: float
    dest: str | None = None
    stream_seq: int | None = None


@dataclass(frozen=True, slots=True)
class StreamState:
    """A sender's stream to one destination: ``next_seq`` is the next to assign."""

    dest: str
    stream_id: str
    next_seq: int
    acked: int


class Outbox:
    """A bounded, persisted FIFO of outgoing messages (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        busy_timeout: float = 2.0,
    ) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("outbox limits must be positive")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages"
            ).fetchone()
        except sqlite3.OperationalError as exc:
            raise TransportError(
                f"cannot open outbox {self.path}: {exc} (is another process using it?)"
            ) from exc
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open outbox {self.path}: {exc}") from exc
        self._count: int = count
        self._bytes: int = size
        if count:
            log.info(
                "outbox %s reopened with %d messages (%d bytes) to send", self.path, count, size
            )

    # ---- writing -------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Store a plain durable message; returns its ``seq``."""
        with self._lock:
            db = self._conn()
            self._check_room(len(payload))
            try:
                cur = db.execute(
                    "INSERT INTO messages (topic, payload, qos, created) VALUES (?, ?, ?, ?)",
                    (topic, payload, qos, time.time()),
                )
            except sqlite3.Error as exc:
                raise TransportError(f"outbox {self.path}: cannot store message: {exc}") from exc
            self._count += 1
            self._bytes += len(payload)
            seq = cur.lastrowid
            assert seq is not None
            return seq

    def append_stream(
        self, dest: str, topic: str, build: Callable[[str, int], bytes], qos: int = 1
    ) -> tuple[str, int]:
        """Assign the next stream seq for ``dest``, build the message and store it, atomically.

        ``build(stream_id, stream_seq)`` runs inside the transaction, so the seq it embeds
        (and signs) is exactly the one stored; if it raises, nothing is stored or consumed.
        Returns ``(stream_id, stream_seq)``.
        """
        with self._lock:
            db = self._conn()
            self._check_room(0)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute(
                        "SELECT stream_id, next_seq FROM streams WHERE dest = ?", (dest,)
                    ).fetchone()
                    if row is None:
                        stream_id, seq = secrets.token_hex(8), 1
                        db.execute(
                            "INSERT INTO streams (dest, stream_id, next_seq, acked) "
                            "VALUES (?, ?, 1, 0)",
                            (dest, stream_id),
                        )
                    else:
                        stream_id, seq = row
                    payload = build(stream_id, seq)
                    if not isinstance(payload, bytes | bytearray):
                        raise TypeError(f"build() must return bytes, not {type(payload).__name__}")
                    self._check_room(len(payload))
                    db.execute(
                        "INSERT INTO messages (topic, payload, qos, created, dest, stream_seq) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (topic, bytes(payload), qos, time.time(), dest, seq),
                    )
                    db.execute("UPDATE streams SET next_seq = ? WHERE dest = ?", (seq + 1, dest))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise TransportError(f"outbox {self.path}: cannot store message: {exc}") from exc
            self._count += 1
            self._bytes += len(payload)
            return stream_id, seq

    def delete(self, seqs: Collection[int]) -> int:
        """Delete messages by ``seq`` (confirmed ones); returns how many were there."""
        if not seqs:
            return 0
        ordered = sorted(seqs)
        removed = 0
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                for i in range(0, len(ordered), _CHUNK):
                    chunk = ordered[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sizes = db.execute(
                        f"DELETE FROM messages WHERE seq IN ({marks}) RETURNING LENGTH(payload)",
                        chunk,
                    ).fetchall()
                    removed += self._forget(sizes)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise TransportError(f"outbox {self.path}: cannot delete messages: {exc}") from exc
        return removed

    def ack_stream(self, dest: str, upto: int) -> int:
        """Record that ``dest`` acknowledged its stream up to ``upto``; delete those messages."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                sizes = db.execute(
                    "DELETE FROM messages WHERE dest = ? AND stream_seq <= ? "
                    "RETURNING LENGTH(payload)",
                    (dest, upto),
                ).fetchall()
                db.execute(
                    "UPDATE streams SET acked = ? WHERE dest = ? AND acked < ?", (upto, dest, upto)
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise TransportError(f"outbox {self.path}: cannot record ack: {exc}") from exc
            return self._forget(sizes)

    # ---- reading -------------------------------------------------------------------------

    def pending(self, after: int = 0, limit: int = 256) -> list[OutboxMessage]:
        """Plain messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE dest IS NULL AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        return [OutboxMessage(*r) for r in rows]

    def get(self, seqs: Collection[int]) -> list[OutboxMessage]:
        """The messages still stored among ``seqs``, oldest first."""
        ordered = sorted(seqs)
        out: list[OutboxMessage] = []
        with self._lock:
            db = self._conn()
            for i in range(0, len(ordered), _CHUNK):
                chunk = ordered[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE seq IN ({marks}) ORDER BY seq", chunk
                ).fetchall()
                out.extend(OutboxMessage(*r) for r in rows)
        return out

    def stream_messages(
        self, dest: str, first: int, last: int, limit: int = 256
    ) -> list[OutboxMessage]:
        """Stream messages to ``dest`` with ``first <= stream_seq <= last``, in stream order."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM messages "
                    "WHERE dest = ? AND stream_seq BETWEEN ? AND ? ORDER BY stream_seq LIMIT ?",
                    (dest, first, last, limit),
                )
                .fetchall()
            )
        return [OutboxMessage(*r) for r in rows]

    def streams(self) -> list[StreamState]:
        with self._lock:
            rows = (
                self._conn()
                .execute("SELECT dest, stream_id, next_seq, acked FROM streams ORDER BY dest")
                .fetchall()
            )
        return [StreamState(*r) for r in rows]

    def stream(self, dest: str) -> StreamState | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT dest, stream_id, next_seq, acked FROM streams WHERE dest = ?", (dest,)
                )
                .fetchone()
            )
        return StreamState(*row) if row else None

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Total payload bytes stored."""
        return self._bytes

    def count_plain(self) -> int:
        """Plain durable messages stored (those the transport confirms with the broker)."""
        with self._lock:
            (n,) = (
                self._conn().execute("SELECT COUNT(*) FROM messages WHERE dest IS NULL").fetchone()
            )
        return int(n)

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, messages={self._count}, bytes={self._bytes})"

    # ---- internals (call with the lock held) ---------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise TransportError(f"outbox {self.path} is closed")
        return self._db

    def _check_room(self, nbytes: int) -> None:
        if self._count + 1 > self.max_messages or self._bytes + nbytes > self.max_bytes:
            raise TransportError(
                f"outbox {self.path} is full: {self._count} messages, {self._bytes} bytes "
                f"(limits {self.max_messages} messages, {self.max_bytes} bytes); "
                "is the broker or the receiver unreachable?"
            )

    def _forget(self, sizes: list[tuple[int]]) -> int:
        self._count -= len(sizes)
        self._bytes -= sum(s for (s,) in sizes)
        return len(sizes)
