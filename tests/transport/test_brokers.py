"""The embedded broker and the Mosquitto runner: ports, errors, restarts, foreground run."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from meshops.errors import BrokerError
from meshops.transport import EmbeddedBroker, MosquittoBroker, MqttTransport
from meshops.transport import mosquitto as mosquitto_module

from .helpers import Collector

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
