"""Shared fixtures: real brokers on free loopback ports, each stopped after its test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.transport import EmbeddedBroker, MosquittoBroker, find_mosquitto


def _leaked_threads_after(before: set[threading.Thread], grace_s: float = 3.0) -> list[str]:
    deadline = time.monotonic() + grace_s
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            return sorted(t.name for t in leaked)
        time.sleep(0.05)


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fails a test that leaves a thread running; parts that own threads make it autouse."""
    before = set(threading.enumerate())
    yield
    leaked = _leaked_threads_after(before)
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """An amqtt broker on a free port, on its own thread; stopped and joined afterwards."""
    broker = EmbeddedBroker().start(timeout=10)
    try:
        yield broker
    finally:
        broker.stop(timeout=10)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A Mosquitto child process on a free port (no persistence); killed afterwards."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: run the suite through scripts/test")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto").start(timeout=10)
    try:
        yield broker
    finally:
        broker.stop(timeout=5)


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest) -> EmbeddedBroker | MosquittoBroker:
    """Each transport test runs against both brokers; both offer port, url and restart()."""
    name = "embedded_broker" if request.param == "embedded" else "mosquitto"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the zoo's real models are exported, once per test session (torch runs here)."""
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo(zoo_dir: Path) -> dict[str, Any]:
    """Every zoo model exported (EfficientNet-Lite0, MiniLM, digits, Haar), by name."""
    from meshops.serving.zoo import EXPORTS, prepare

    return {files.name: files for files in prepare(list(EXPORTS), zoo_dir)}
