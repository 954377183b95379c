"""The embedded broker and the Mosquitto runner: ports, errors, restarts, foreground run."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from meshops.errors import BrokerError
from meshops.transport import EmbeddedBroker, MosquittoBroker, MqttTransport
from meshops.transport import mosquitto as mosquitto_module

from .helpers import Collector, wait_until

pytestmark = pytest.mark.timeout(60)


def _roundtrip(port: int) -> None:
    got = Collector()
    with MqttTransport("127.0.0.1", port, "rt-check", on_message=got) as t:
        t.subscribe("check/x", 1)
        for _ in range(50):
            t.publish("check/x", b"hi", 1, durable=False)
            if got.wait_for(1, 0.1):
                return
    raise AssertionError(f"no round trip through the broker on port {port}")


def test_embedded_broker_picks_a_free_port_and_serves(embedded_broker: EmbeddedBroker) -> None:
    assert embedded_broker.port > 0
    assert embedded_broker.url == f"mqtt://127.0.0.1:{embedded_broker.port}"
    _roundtrip(embedded_broker.port)


def test_embedded_broker_on_a_busy_port_raises(embedded_broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="cannot listen"):
        EmbeddedBroker(port=embedded_broker.port).start(timeout=5)


def test_embedded_broker_restarts_on_the_same_port() -> None:
    with EmbeddedBroker() as broker:
        port = broker.port
        broker.restart()
        assert broker.port == port
        _roundtrip(port)
    assert not broker.running


def _publish_until(stop: threading.Event, clients: list[MqttTransport]) -> None:
    i = 0
    while not stop.is_set():
        for client in clients:
            # Only while connected: paho 2.2 can put a publish made from another thread
            # during its reconnect ahead of CONNECT, and amqtt then rejects the connection.
            if client.connected:
                client.publish(f"load/{client.client_id}", b"x" * 64, i % 2, durable=False)
        i += 1
        stop.wait(0.002)


def _broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("meshops-broker-")]


def test_embedded_broker_stops_promptly_under_load_with_reconnecting_clients() -> None:
    """Regression: stop() with busy clients hung in amqtt's shutdown until its timeout.

    amqtt cancels each client's reader and waits for it without a bound; on Python 3.11 a
    cancellation that meets a completed read is lost, and with a client that keeps
    publishing the reader never ends. The broker must abort the connections itself.
    """
    broker = EmbeddedBroker().start(timeout=10)
    port = broker.port
    got = Collector()
    clients = [
        MqttTransport(
            "127.0.0.1", port, f"load-{k}", on_message=got, reconnect_min=0.05, reconnect_max=0.2
        )
        for k in range(4)
    ]
    stop_publishing = threading.Event()
    publisher = threading.Thread(target=_publish_until, args=(stop_publishing, clients))
    try:
        for client in clients:
            client.start(timeout=10)
            client.subscribe("load/#", 1)
        publisher.start()
        for cycle in range(10):
            if cycle:
                broker.start(timeout=10)
                assert broker.port == port
            # every client (re)connected, and messages flow through the broker again
            assert wait_until(lambda: all(c.connected for c in clients), 10), cycle
            seen = len(got.payloads)
            assert got.wait_for(seen + 20, 10), cycle

            broker.stop(timeout=10)  # raises BrokerError if the thread is still alive

            assert not broker.running and not _broker_threads(), cycle
            assert not broker.last_stop_forced, f"cycle {cycle}: stop needed the forced path"
            with pytest.raises(ConnectionRefusedError):  # the listener is gone
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        stop_publishing.set()
        if publisher.is_alive():
            publisher.join(10)
        for client in clients:
            client.stop()
        broker.stop(timeout=10)


def test_run_broker_serves_until_sigterm(tmp_path: Path) -> None:
    code = (
        "from meshops.transport import run_broker\n"
        "run_broker(port=0, on_ready=lambda b: print(b.port, flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        _roundtrip(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_mosquitto_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto_module, "find_mosquitto", lambda: None)
    with pytest.raises(BrokerError, match="mosquitto not found"):
        MosquittoBroker()


@pytest.mark.mosquitto
def test_mosquitto_on_a_busy_port_raises(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=str(mosquitto.port)):
        MosquittoBroker(port=mosquitto.port, workdir=tmp_path / "second").start(timeout=5)


@pytest.mark.mosquitto
def test_mosquitto_kill_and_restart_on_the_same_port(mosquitto: MosquittoBroker) -> None:
    port, pid = mosquitto.port, mosquitto.pid
    mosquitto.kill()
    assert not mosquitto.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.pid != pid
    _roundtrip(port)
    text = mosquitto.config_path.read_text()
    assert "max_queued_messages 0" in text and "set_tcp_nodelay true" in text
