"""The node's durable state in SQLite: pipeline configs, allow-list, seen message hashes.

Every accepted pipeline config is written here *before* it is applied, so a node killed at
any moment restores what it had accepted. The seen-hash table makes replay protection
survive a restart for the length of the replay window.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from meshops.errors import ConfigError

__all__ = ["NodeStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    name     TEXT PRIMARY KEY,
    config   TEXT NOT NULL,
    updated  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS allowed (
    address  TEXT PRIMARY KEY,
    alias    TEXT
);
CREATE TABLE IF NOT EXISTS seen (
    hash     TEXT PRIMARY KEY,
    expires  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_expires ON seen(expires);
"""


class NodeStore:
    """Thread-safe access to ``node.db`` (one connection behind a lock; calls are short)."""

    def __init__(self, path: Path, *, replay_window_s: float = 120.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the node store {path}: {exc}") from exc
        self._lock = threading.Lock()
        self._window = replay_window_s
        self._last_prune = 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- pipelines -----------------------------------------------------------------------

    def save_pipeline(self, name: str, config: dict[str, Any]) -> None:
        text = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO pipelines(name, config, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config=excluded.config, updated=excluded.updated",
                (name, text, time.time()),
            )

    def delete_pipeline(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM pipelines WHERE name=?", (name,)).rowcount > 0

    def pipelines(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, config FROM pipelines ORDER BY name").fetchall()
        return {name: json.loads(text) for name, text in rows}

    # ---- allow-list ----------------------------------------------------------------------

    def allow(self, address: str, alias: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO allowed(address, alias) VALUES (?, ?) "
                "ON CONFLICT(address) DO UPDATE SET alias=coalesce(excluded.alias, alias)",
                (address, alias),
            )

    def disallow(self, address: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM allowed WHERE address=?", (address,)).rowcount > 0

    def allowed(self) -> dict[str, str | None]:
        with self._lock:
            rows = self._db.execute("SELECT address, alias FROM allowed ORDER BY address")
            return dict(rows.fetchall())

    # ---- replay guard (meshops.protocol.ReplayGuard) -------------------------------------

    def check_and_remember(
        self, msg_hash: str, when: float, *, keep_s: float | None = None
    ) -> bool:
        """True if ``msg_hash`` is new (and now remembered for ``keep_s``); False for a replay.

        A message judged by its age needs remembering only while it could still pass that
        check (twice the window, by default); one that carries no zone (SDK commands) can
        never be refused on age, so the caller keeps it for longer (``keep_s``).
        """
        keep = keep_s if keep_s is not None else 2 * self._window
        with self._lock:
            if when - self._last_prune > 10.0:
                self._db.execute("DELETE FROM seen WHERE expires < ?", (when,))
                self._last_prune = when
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen(hash, expires) VALUES (?, ?)", (msg_hash, when + keep)
            )
            return cursor.rowcount == 1
