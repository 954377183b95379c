"""A node as a real process: killed, it comes back with its pipelines; stopped, it exits clean.

The node runs as ``python -m meshops.cli node start`` (what an operator runs), commanded by
signed messages from the test process through a real Mosquitto. A child process cannot be
inspected directly, so the tests read what it publishes: payloads, notifications, and the
counters in its heartbeats (``MESHOPS_RECEIVED``, ``MESHOPS_REFUSED``, ``NR_PIPELINES``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from meshops.node import load_or_create_key
from meshops.protocol import Message
from meshops.transport import MosquittoBroker, Outbox
from tests.node.helpers import (
    Client,
    decode_heartbeat,
    echo_pipeline,
    no_leaked_threads,  # noqa: F401  (autouse here: every test stops what it starts)
)

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _no_leaks(no_leaked_threads: None) -> None:  # noqa: F811
    """Checked after the clients and brokers of each test are gone."""


class NodeProcess:
    """``meshops node start`` as a child process, on a fixed home (so restarts keep state)."""

    def __init__(self, home: Path, broker_url: str, alias: str = "n1") -> None:
        self.home = home
        self.broker_url = broker_url
        self.alias = alias
        # the key first, so the test knows the node's address before it starts
        self.address = load_or_create_key(home / "node.pem").address
        self.log_path = home / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> NodeProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {**os.environ, "MESHOPS_HEARTBEAT_INTERVAL_S": "1"}
        env.pop("MESHOPS_HOME", None)
        env.pop("MESHOPS_BROKER", None)
        self.runs += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- run {self.runs}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "meshops.cli",
                    "node",
                    "start",
                    "--home",
                    str(self.home),
                    "--alias",
                    self.alias,
                    "--broker",
                    self.broker_url,
                    "--unsecured",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: signal.Signals, timeout: float = 20.0) -> int:
        """Send ``sig``; the exit code. A node still running after ``timeout`` (a generous
        hang bound, not a timing goal: stop times belong in bench/) fails the test."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node did not exit on {sig.name} in {timeout} s") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[type[NodeProcess]]:
    """Makes ``NodeProcess`` objects; kills whatever is still running after the test."""
    made: list[NodeProcess] = []

    class Tracked(NodeProcess):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for node in made:
        node.kill()


def wait_listening(client: Client, node: NodeProcess, timeout: float = 20.0) -> dict:
    """Until the node's heartbeat shows it received our probe: it is up and subscribed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert node.proc is not None and node.proc.poll() is None, (
            f"node exited with {node.proc and node.proc.returncode}:\n{node.log_tail()}"
        )
        mark = client.mark()
        client.send(node.address, b"probe")
        found = client.wait_for(
            1,
            2.5,
            since=mark,
            topic=client.topics.ctrl,
            sender=node.address,
            where=lambda m: _heartbeat(m).get("MESHOPS_RECEIVED", 0) > 0,
        )
        if found:
            return _heartbeat(found[-1])
    raise AssertionError(f"node never took a message:\n{node.log_tail()}")


def _heartbeat(message: Message) -> dict:
    return decode_heartbeat(message)


def latest_heartbeat(client: Client, node: NodeProcess, since: int, timeout: float = 5.0) -> dict:
    beats = client.wait_for(1, timeout, since=since, topic=client.topics.ctrl, sender=node.address)
    assert beats, f"no heartbeat from the node:\n{node.log_tail()}"
    return _heartbeat(beats[-1])


def test_pipelines_survive_sigkill(
    mosquitto: MosquittoBroker, tmp_path: Path, launch: type[NodeProcess]
) -> None:
    node = launch(tmp_path / "home", mosquitto.url)
    with Client(mosquitto.port) as client:
        node.start()
        wait_listening(client, node)
        deploys = {
            name: client.deploy(node.address, echo_pipeline(name)) for name in ("p1", "p2", "p3")
        }
        mark = client.mark()
        for name in ("p1", "p2", "p3"):
            assert client.wait_payloads(node.address, name, 2, since=mark), name
        client.send(node.address, client.command(node.address, "ARCHIVE_CONFIG", "p3"))
        assert client.wait_notification(node.address, 4, "p3", since=mark) is not None

        code = node.signal(signal.SIGKILL)
        assert code == -signal.SIGKILL
        killed_at = client.mark()

        node.start()
        wait_listening(client, node)
        restarted = client.mark()
        # both kept pipelines run again without being told; the archived one does not
        for name in ("p1", "p2"):
            fresh = client.wait_payloads(node.address, name, 3, since=restarted, timeout=10)
            assert len(fresh) >= 3, f"{name} not restored:\n{node.log_tail()}"
        assert not client.payloads(node.address, "p3", since=killed_at)
        heartbeat = latest_heartbeat(client, node, since=client.mark())
        assert heartbeat["NR_PIPELINES"] == 2

        # the replay guard outlived the kill: the old deploy of p3, sent again, is refused
        client.send(node.address, deploys["p3"])
        beat_mark = client.mark()
        refused = client.wait_for(
            1,
            5,
            since=beat_mark,
            topic=client.topics.ctrl,
            sender=node.address,
            where=lambda m: _heartbeat(m).get("MESHOPS_REFUSED", {}).get("replayed") == 1,
        )
        assert refused, f"replay not refused: {latest_heartbeat(client, node, beat_mark)}"
        assert _heartbeat(refused[-1])["NR_PIPELINES"] == 2
        assert not client.payloads(node.address, "p3", since=killed_at)

        code = node.signal(signal.SIGTERM)
        assert code == 0, node.log_tail()


def test_sigterm_stops_the_node_cleanly(
    mosquitto: MosquittoBroker, tmp_path: Path, launch: type[NodeProcess]
) -> None:
    node = launch(tmp_path / "home", mosquitto.url)
    with Client(mosquitto.port) as client:
        node.start()
        wait_listening(client, node)
        client.deploy(node.address, echo_pipeline("p1"))
        assert client.wait_payloads(node.address, "p1", 2)
        process = psutil.Process(node.pid)
        children = process.children(recursive=True)
        threads = process.num_threads()
        assert threads > 1

        code = node.signal(signal.SIGTERM)
        assert code == 0, node.log_tail()
        assert "Traceback" not in node.log_tail(200), node.log_tail()
        stray = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not stray, f"child processes left behind: {stray}"
        assert not psutil.pid_exists(node.pid) or psutil.Process(node.pid).status() == (
            psutil.STATUS_ZOMBIE
        )
        # nothing published after the exit
        mark = client.mark()
        time.sleep(1.5)
        assert not client.messages(since=mark, sender=node.address)


def test_outbox_keeps_what_a_dead_broker_did_not_take(
    tmp_path: Path, launch: type[NodeProcess]
) -> None:
    """Broker gone, node stopped: payloads wait in the outbox file and go out on the next run."""
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto").start(timeout=10)
    try:
        node = launch(tmp_path / "home", broker.url)
        with Client(broker.port) as client:
            node.start()
            wait_listening(client, node)
            client.deploy(node.address, echo_pipeline("p1", delay=0.1))
            assert client.wait_payloads(node.address, "p1", 2)
        broker.kill()
        time.sleep(1.5)  # ~15 payloads produced with nowhere to go
        code = node.signal(signal.SIGTERM)
        assert code == 0, node.log_tail()

        with Outbox(tmp_path / "home" / "outbox.db") as outbox:
            waiting = outbox.count_plain()
        assert waiting >= 5, f"only {waiting} messages in the outbox"
        stopped_at = time.time()

        broker.restart(timeout=10)
        with Client(broker.port) as client:
            node.start()
            wait_listening(client, node)
            # the payloads made while the broker was down arrive now
            old = client.wait_for(
                5,
                10,
                topic=client.topics.payloads,
                sender=node.address,
                where=lambda m: (
                    m.path[1] == "p1"
                    and m.timestamp is not None
                    and m.timestamp.timestamp() < stopped_at
                ),
            )
            assert len(old) >= 5, f"{len(old)} of {waiting} stored payloads delivered"
            code = node.signal(signal.SIGTERM)
            assert code == 0, node.log_tail()
    finally:
        broker.stop(timeout=5)
