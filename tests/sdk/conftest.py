"""SDK tests run a real node on a real broker; every test stops what it starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshops.node import Node
from meshops.protocol import NodeKey
from meshops.sdk import Session
from meshops.transport import MosquittoBroker
from tests.node.helpers import running_node


@pytest.fixture(autouse=True)
def _no_leaks(no_leaked_threads: None) -> None:
    """Every SDK test must leave no thread behind (sessions, nodes, callbacks)."""


@contextlib.contextmanager
def supervisor(
    broker_url: str, home: Path, *, alias: str = "n1", **settings: Any
) -> Iterator[Node]:
    """A secured supervisor node with 1 s heartbeats and network map; stopped afterwards."""
    values = {"supervisor": True, "netmon_interval_s": 1.0, **settings}
    with running_node(broker_url, home, alias=alias, **values) as node:
        yield node


@contextlib.contextmanager
def session_on(broker_url: str, key: NodeKey | None = None, **kwargs: Any) -> Iterator[Session]:
    """A session with its own key (never the user's ~/.meshops); closed afterwards."""
    session = Session(broker_url, key=key or NodeKey.generate(), **kwargs)
    try:
        yield session
    finally:
        session.close()


@dataclass
class Net:
    """A node ``n1`` that allows ``session``'s key, and that session, already acquainted."""

    broker_url: str
    node: Node
    session: Session
    home: Path

    def other_session(self, **kwargs: Any) -> contextlib.AbstractContextManager[Session]:
        """A second session with the same (allowed) key."""
        return session_on(self.broker_url, key=self.session.key, **kwargs)


@contextlib.contextmanager
def network(broker_url: str, home: Path) -> Iterator[Net]:
    key = NodeKey.generate()
    with supervisor(broker_url, home / "n1") as node:
        node.store.allow(key.address, "sdk-test")
        with session_on(broker_url, key=key, name="sdk-test") as session:
            session.wait_for_node("n1", timeout=10)
            yield Net(broker_url, node, session, home)


@pytest.fixture
def net(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[Net]:
    with network(mosquitto.url, tmp_path) as made:
        yield made


def echo(instance_id: str = "e1", *, delay: float = 0.1, **config: Any) -> dict[str, Any]:
    """An ECHO_01 instance (flat dict form) that ticks every ``delay`` s on a Void pipeline."""
    return {
        "signature": "ECHO_01",
        "instance_id": instance_id,
        "allow_empty_inputs": True,
        "process_delay": delay,
        **config,
    }
