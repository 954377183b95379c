"""What ``meshops up`` started, as written to ``HOME/network.json``, and process checks.

The state file is the only link between ``meshops up --detach`` and a later
``meshops down`` or ``meshops status``: it names every child by pid *and* start time, so a
pid the system has since reused for something else is never taken for ours (nor killed).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from meshops.errors import ConfigError

__all__ = ["STATE_FILE", "LocalNode", "NetworkInfo", "is_alive", "process_started"]

STATE_FILE = "network.json"


@dataclass(frozen=True)
class LocalNode:
    """One child process of the local network (a node, or the broker with ``role="broker"``)."""

    alias: str
    role: str  # "broker", "chain", "supervisor" or "worker"
    pid: int
    started: float  # the process's create_time, to tell it from a later process with its pid
    home: str = ""
    address: str = ""
    eth: str = ""


@dataclass
class NetworkInfo:
    """A local network: where its broker listens, its nodes, and how it went."""

    home: str
    broker_url: str
    port: int
    broker: LocalNode
    nodes: list[LocalNode] = field(default_factory=list)
    client_address: str = ""
    first_payload_s: float | None = None
    log_dir: str = ""
    state: str = "starting"  # "starting" while start() runs, then "running"
    demo: dict[str, str] | None = None  # {"node": alias, "pipeline": name} when deployed
    chain: LocalNode | None = None  # the embedded chain's process (None: none, or a --chain URL)
    chain_url: str | None = None
    deployment: str | None = None  # the deployment record, once the contracts are deployed
    epoch_seconds: int | None = None
    epoch_genesis: int | None = None

    @property
    def processes(self) -> list[LocalNode]:
        """Every child, nodes first, the chain and the broker last (the order they stop in)."""
        return [*self.nodes, *([self.chain] if self.chain else []), self.broker]

    def alive(self) -> list[LocalNode]:
        return [proc for proc in self.processes if is_alive(proc)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkInfo:
        values = dict(data)
        values["broker"] = LocalNode(**values["broker"])
        values["nodes"] = [LocalNode(**node) for node in values.get("nodes", [])]
        if values.get("chain") is not None:
            values["chain"] = LocalNode(**values["chain"])
        return cls(**values)

    # ---- the state file ------------------------------------------------------------------

    def save(self) -> Path:
        """Write ``HOME/network.json`` atomically (a reader never sees half a file)."""
        path = Path(self.home) / STATE_FILE
        fd, tmp = tempfile.mkstemp(prefix=".network.", suffix=".tmp", dir=self.home)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=2)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, home: Path) -> NetworkInfo | None:
        """The state in ``home``, None if there is none; ConfigError if it is unreadable."""
        path = home / STATE_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{path} is not a MeshOps network state file: {exc}") from exc


def process_started(pid: int) -> float:
    """The create time of process ``pid`` (0.0 if it is already gone)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def is_alive(proc: LocalNode) -> bool:
    """Whether ``proc`` still runs: same pid, same start time, not a zombie."""
    try:
        process = psutil.Process(proc.pid)
        return (
            abs(process.create_time() - proc.started) < 1.0
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False
