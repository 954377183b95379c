"""``meshops.local``: a whole local network as separate processes (``meshops up``/``down``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from meshops.errors import BrokerError, ConfigError
from meshops.local import LocalNetwork, NetworkInfo, status, stop
from meshops.local.procs import port_accepts
from meshops.local.state import STATE_FILE, LocalNode
from meshops.protocol import NodeKey

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _children() -> list[psutil.Process]:
    """Our child processes that still run (zombies are dead)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "meshops.cli" in child.cmdline():
                alive.append(child)
        except psutil.Error:
            pass
    return alive


@pytest.fixture
def key() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "up"
    if (tmp_path / "up" / STATE_FILE).exists():  # a failed test must not leave a network
        stop(tmp_path / "up", timeout=5)


def test_up_status_twice_and_down(home: Path, key: NodeKey) -> None:
    net = LocalNetwork(home, port=0, workers=2, client_key=key)
    info = net.start(timeout=30, demo=True)

    assert [(n.alias, n.role) for n in info.nodes] == [
        ("supervisor", "supervisor"),
        ("worker-1", "worker"),
        ("worker-2", "worker"),
    ]
    assert len({n.address for n in info.nodes}) == 3
    assert all(n.address.startswith("0xai_") and n.eth.startswith("0x") for n in info.nodes)
    assert info.broker_url == f"mqtt://127.0.0.1:{info.port}" and port_accepts(info.port)
    assert info.client_address == key.address
    assert info.first_payload_s is not None and info.first_payload_s > 0  # timed in the note
    assert info.demo == {"node": "worker-1", "pipeline": "demo"}
    assert len(info.alive()) == 4
    print(f"first demo payload after {info.first_payload_s:.2f} s")

    saved = json.loads((home / STATE_FILE).read_text())
    assert saved["state"] == "running" and saved["port"] == info.port
    reported = status(home)
    assert reported is not None and reported.to_dict() == info.to_dict()
    assert (home / "logs" / "worker-1.log").exists()

    with pytest.raises(ConfigError, match="already running") as again:
        LocalNetwork(home, port=0, client_key=key).start(timeout=10)
    assert "meshops down" in str(again.value)
    assert len(status(home).alive()) == 4  # the refused start touched nothing

    pids = [p.pid for p in info.processes]
    stop(home, timeout=15)  # as ``meshops down`` does: from the state file only
    assert not (home / STATE_FILE).exists()
    assert status(home) is None
    assert not [pid for pid in pids if psutil.pid_exists(pid) and _alive(pid)]
    assert not _children()
    assert not port_accepts(info.port)

    with pytest.raises(ConfigError, match="no MeshOps network runs"):
        stop(home)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_busy_port_is_one_line_naming_the_port(home: Path, key: NodeKey) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BrokerError) as error:
            LocalNetwork(home, port=port, client_key=key).start(timeout=10)
    message = str(error.value)
    assert f"port {port}" in message and "\n" not in message
    assert not (home / STATE_FILE).exists()
    assert not _children()


def test_node_that_exits_fails_start_and_leaves_nothing(home: Path, key: NodeKey) -> None:
    (home / "worker-2" / "outbox.db").mkdir(parents=True)  # the node cannot open its outbox
    with pytest.raises(ConfigError) as error:
        LocalNetwork(home, port=0, client_key=key).start(timeout=20)
    message = str(error.value)
    assert message.startswith("node worker-2 exited")
    assert "worker-2.log" in message and "outbox" in message  # the tail of its log
    assert not (home / STATE_FILE).exists()
    assert not _children()


def test_corrupt_key_names_the_node_and_starts_nothing(home: Path, key: NodeKey) -> None:
    (home / "worker-1").mkdir(parents=True)
    (home / "worker-1" / "node.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="node worker-1 cannot start"):
        LocalNetwork(home, port=0, client_key=key).start(timeout=10)
    assert not (home / STATE_FILE).exists()
    assert not _children()


def test_stale_state_is_cleaned_up(home: Path, key: NodeKey) -> None:
    home.mkdir(parents=True)
    dead = psutil.Popen(["true"])
    dead.wait()
    stale = NetworkInfo(
        str(home), "mqtt://127.0.0.1:1", 1, LocalNode("broker", "broker", dead.pid, 0.0)
    )
    stale.save()
    assert status(home) is None

    net = LocalNetwork(home, port=0, workers=0, client_key=key)
    info = net.start(timeout=20, demo=False)
    try:
        assert [n.alias for n in info.nodes] == ["supervisor"]
        assert info.first_payload_s is None and info.demo is None
        assert NetworkInfo.load(home).port == info.port  # the stale state was replaced
    finally:
        net.stop()
    assert not _children()
