"""Driving the unmodified reference SDK (``ratio1``) against our nodes, as a user would."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meshops.node import Node, NodeSettings
from tests.waiting import wait_until as wait_for  # noqa: F401 - used by the tests here

log = logging.getLogger(__name__)


@contextlib.contextmanager
def running_node(home: Path, broker_port: int, **settings: Any) -> Iterator[Node]:
    """A node on 127.0.0.1:``broker_port`` with fast heartbeats; stopped afterwards."""
    values = {
        "alias": "meshops-n1",
        "supervisor": True,
        "heartbeat_interval_s": 1.0,
        "netmon_interval_s": 1.0,
        **settings,
    }
    node = Node(NodeSettings(home=home, broker=f"mqtt://127.0.0.1:{broker_port}", **values))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@contextlib.contextmanager
def sdk_session(home: Path, port: int, name: str) -> Iterator[Any]:
    """A ``ratio1.Session`` with its own HOME (key and cache), fully offline; closed after."""
    from ratio1 import Session

    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    try:
        session = Session(
            host="127.0.0.1",
            port=port,
            user="u",
            pwd="p",
            secured=False,
            name=name,
            run_dauth=False,
            auto_configuration=False,
            silent=True,
        )
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
    try:
        yield session
    finally:
        session.close(wait_close=True)


class Received:
    """A thread-safe list for what SDK callbacks hand over."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)
