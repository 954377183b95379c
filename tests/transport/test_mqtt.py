"""MqttTransport against real brokers (amqtt and Mosquitto): routing, TCP_NODELAY,
reconnects, the outbox, and a dispatcher that survives its handlers."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from meshops.errors import TransportError
from meshops.transport import EmbeddedBroker, MosquittoBroker, MqttTransport, Outbox

from .helpers import Collector, wait_until

pytestmark = pytest.mark.timeout(60)

Broker = EmbeddedBroker | MosquittoBroker


def _transport(broker: Broker, name: str, **kwargs: object) -> MqttTransport:
    return MqttTransport("127.0.0.1", broker.port, name, reconnect_max=1.0, **kwargs)  # type: ignore[arg-type]


def _take_down(broker: Broker) -> None:
    """SIGKILL Mosquitto; stop the in-process broker (it cannot be killed alone)."""
    if isinstance(broker, MosquittoBroker):
        broker.kill()
    else:
        broker.stop()


def _subscribed(t: MqttTransport, topic: str, seen: Collector, timeout: float = 5.0) -> None:
    """Publish probes until one comes back: the subscription is live at the broker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t.publish(topic, b"probe", 1, durable=False)
        if wait_until(lambda: b"probe" in seen.payloads, 0.2):
            return
    raise AssertionError(f"subscription to {topic} never became live")


def test_publish_subscribe_and_routing(broker: Broker) -> None:
    default, routed = Collector(), Collector()
    with _transport(broker, "routing", on_message=default) as t:
        t.subscribe("meshops/+/payloads", 1, handler=routed)
        t.subscribe("meshops/other/#", 1)
        _subscribed(t, "meshops/x/payloads", routed)
        t.publish("meshops/a/payloads", b"one", 1, durable=False)
        t.publish("meshops/other/deep/topic", b"two", 1, durable=False)
        assert routed.wait_for(2, 5)
        assert default.wait_for(1, 5)
    assert routed.messages[-1] == ("meshops/a/payloads", b"one")
    assert default.messages == [("meshops/other/deep/topic", b"two")]


def test_tcp_nodelay_is_set_on_every_connection(broker: Broker) -> None:
    # Without TCP_NODELAY a QoS-1 publish->deliver round trip takes 40-90 ms (Nagle + delayed
    # ACK) instead of about 1 ms; bench/messaging.py measures it, this guards the option itself.
    with _transport(broker, "nodelay") as t:
        sock = t._client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert t.tcp_nodelay is True
        _take_down(broker)
        assert wait_until(lambda: not t.connected, 5)
        broker.restart()
        assert wait_until(lambda: t.connection_count == 2 and t.connected, 10)
        sock = t._client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_tcp_nodelay_can_be_turned_off(broker: Broker) -> None:
    with _transport(broker, "delay", tcp_nodelay=False) as t:
        assert t.tcp_nodelay is False


def test_reconnects_and_resubscribes_after_broker_restart(broker: Broker) -> None:
    got = Collector()
    with _transport(broker, "resub", on_message=got) as t:
        t.subscribe("resub/#", 1)
        _subscribed(t, "resub/x", got)
        _take_down(broker)
        assert wait_until(lambda: not t.connected, 5)
        broker.restart()
        assert wait_until(lambda: t.connection_count == 2 and t.connected, 10)
        before = len(got.messages)
        with _transport(broker, "resub-pub") as pub:
            deadline = time.monotonic() + 5
            while len(got.messages) == before and time.monotonic() < deadline:
                pub.publish("resub/after", b"after", 1, durable=False)
                time.sleep(0.05)
    assert ("resub/after", b"after") in got.messages


def test_durable_publish_while_broker_down_is_delivered_after_restart(
    broker: Broker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    # A long first reconnect delay, so the fresh receiver below subscribes first.
    publisher = _transport(broker, "durable-pub", outbox=outbox, reconnect_min=1.0).start()
    try:
        _take_down(broker)
        assert wait_until(lambda: not publisher.connected, 5)
        for i in range(30):
            publisher.publish("durable/x", b"%d" % i, qos=(1, 2, 0)[i % 3])
        assert len(outbox) == 30
        broker.restart()
        got = Collector()
        with _transport(broker, "durable-sub", on_message=got) as receiver:
            receiver.subscribe("durable/#", 2)
            _subscribed(receiver, "durable/probe", got)
            assert got.wait_for(31, 15)
            assert publisher.flush(10)
        received = [int(p) for p in got.payloads if p != b"probe"]
        assert sorted(received) == list(range(30))
        # MQTT orders messages per QoS level (a QoS 2 one is released after PUBREL)
        for qos in range(3):
            mine = [i for i in received if (1, 2, 0)[i % 3] == qos]
            assert mine == sorted(mine)
        assert len(outbox) == 0
    finally:
        publisher.stop()
        outbox.close()


def test_outbox_left_by_a_stopped_transport_is_sent_by_the_next(
    broker: Broker, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with Outbox(path) as outbox:
        first = MqttTransport("127.0.0.1", dead_port, "left", outbox=outbox)
        first.start(wait=False)
        for i in range(50):
            first.publish("left/x", b"%d" % i)
        first.stop()
        assert len(outbox) == 50
    got = Collector()
    with _transport(broker, "left-sub", on_message=got) as receiver:
        receiver.subscribe("left/#", 1)
        _subscribed(receiver, "left/probe", got)
        with Outbox(path) as outbox, _transport(broker, "left-2", outbox=outbox) as second:
            assert got.wait_for(51, 10)
            assert second.flush(5)
            assert len(outbox) == 0
    assert [p for p in got.payloads if p != b"probe"] == [b"%d" % i for i in range(50)]


def test_dispatcher_survives_a_handler_exception(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[bytes] = []
    done = threading.Event()

    def handler(topic: str, payload: bytes) -> None:
        if payload == b"bad":
            raise RuntimeError("handler bug")
        got.append(payload)
        if payload == b"good":
            done.set()

    with caplog.at_level(logging.ERROR), _transport(broker, "survive", on_message=handler) as t:
        t.subscribe("survive/x", 1)
        probe = Collector()
        t.subscribe("survive/probe", 1, handler=probe)
        _subscribed(t, "survive/probe", probe)
        t.publish("survive/x", b"bad", 1, durable=False)
        t.publish("survive/x", b"good", 1, durable=False)
        assert done.wait(5)
    assert got == [b"good"]
    failures = [r for r in caplog.records if "handler" in r.getMessage()]
    assert failures and "survive/x" in failures[0].getMessage()
    assert failures[0].exc_info is not None


def test_start_without_a_broker_raises_and_leaves_nothing_running() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = MqttTransport("127.0.0.1", port, "nobody")
    with pytest.raises(TransportError, match="could not connect"):
        t.start(timeout=0.5)
    assert not t.connected


def test_stop_joins_every_thread(broker: Broker, tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        t = _transport(broker, "joiner", outbox=outbox).start()
        names = {th.name for th in threading.enumerate()}
        assert {"meshops-dispatch-joiner", "meshops-outbox-joiner"} <= names
        t.stop(timeout=5)
    assert not [th for th in threading.enumerate() if "joiner" in th.name]


def test_non_durable_qos0_while_disconnected_is_dropped_quietly(broker: Broker) -> None:
    with _transport(broker, "drop0") as t:
        _take_down(broker)
        assert wait_until(lambda: not t.connected, 5)
        t.publish("drop/x", b"lost", 0, durable=False)  # no error: best effort
        broker.restart()
        assert t.wait_connected(10)


def test_non_durable_messages_wait_for_the_connection(broker: Broker) -> None:
    """QoS 1 sent while the broker is away goes out once it accepted us again (never before
    CONNACK, which would make the broker drop the connection); QoS 0 is dropped."""
    got = Collector()
    rx = MqttTransport(
        "127.0.0.1", broker.port, "held-rx", got, reconnect_min=0.05, reconnect_max=0.1
    )
    # the sender comes back later than the receiver, so the receiver has resubscribed by then
    tx = MqttTransport("127.0.0.1", broker.port, "held-tx", reconnect_min=2.0, reconnect_max=2.0)
    with rx, tx:
        rx.subscribe("held/#", 1)
        _subscribed(rx, "held/probe", got)
        _take_down(broker)
        assert wait_until(lambda: not tx.connected and not rx.connected, 5)
        tx.publish("held/q1", b"kept", 1, durable=False)
        tx.publish("held/q0", b"dropped", 0, durable=False)
        broker.restart()
        assert wait_until(lambda: tx.connected and rx.connected, 10)
        assert wait_until(lambda: b"kept" in got.payloads, 10)
        time.sleep(0.3)
    assert b"dropped" not in got.payloads
    assert got.payloads.count(b"kept") == 1
