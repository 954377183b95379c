"""IotQueueListener against a real broker, plus its pure parts (source, decoding, filters)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from meshops.capture import IotQueueListenerCapture
from meshops.capture._mqtt_source import MqttSource, parse_mqtt_url, resolve_source
from meshops.capture.iot_listener import decode_payload, message_passes
from meshops.errors import ConfigError
from meshops.transport import EmbeddedBroker, MosquittoBroker, MqttTransport

from .conftest import StartCapture, make_config
from .helpers import Recorder, wait_until

WARMUP = b'{"warmup": true}'


def publisher(broker: EmbeddedBroker | MosquittoBroker) -> MqttTransport:
    return MqttTransport(broker.host, broker.port, "test-iot-publisher")


def wait_subscribed(pub: MqttTransport, topic: str, rec: Recorder) -> None:
    """Publish a warm-up message until the capture gets one: it is subscribed from then on."""
    done = threading.Event()
    for _ in range(100):
        pub.publish(topic, WARMUP, qos=1)
        if rec.wait_items(1, timeout=0.1):
            done.set()
            break
    assert done.is_set(), f"the capture never received a message: {rec.errors}"


def after_warmup(rec: Recorder) -> list:
    return [item for item in rec.items if item.data != {"warmup": True}]


def test_messages_published_to_the_broker_arrive_in_order(
    embedded_broker: EmbeddedBroker, start_capture: StartCapture
) -> None:
    capture, rec = start_capture(
        IotQueueListenerCapture, URL=f"{embedded_broker.url}/sensors/one", CAP_RESOLUTION=200
    )
    with publisher(embedded_broker) as pub:
        wait_subscribed(pub, "sensors/one", rec)
        pub.publish("sensors/one", json.dumps({"t": 21.5}).encode())
        pub.publish("sensors/one", b"plain text")
        pub.publish("sensors/one", b"\xff\xfe\x00raw")
        assert rec.wait_items(4)
    items = after_warmup(rec)
    assert [(i.data, i.metadata["encoding"]) for i in items] == [
        ({"t": 21.5}, "json"),
        ("plain text", "text"),
        ("//4AcmF3", "base64"),
    ]
    assert all(i.metadata["topic"] == "sensors/one" for i in items)
    assert rec.errors == []


def test_broker_keys_in_stream_config_metadata_and_wildcards(
    embedded_broker: EmbeddedBroker, start_capture: StartCapture
) -> None:
    capture, rec = start_capture(
        IotQueueListenerCapture,
        STREAM_CONFIG_METADATA={
            "HOST": embedded_broker.host,
            "PORT": embedded_broker.port,
            "TOPIC": "plant/+/temp",
            "USER": "#DEFAULT",
        },
        CAP_RESOLUTION=200,
    )
    with publisher(embedded_broker) as pub:
        wait_subscribed(pub, "plant/a/temp", rec)
        pub.publish("plant/b/temp", b"1")
        pub.publish("plant/b/humidity", b"2")  # not matched by the filter
        pub.publish("plant/c/temp", b"3")
        assert rec.wait_items(3)
    assert [(i.metadata["topic"], i.data) for i in after_warmup(rec)] == [
        ("plant/b/temp", 1),
        ("plant/c/temp", 3),
    ]


def test_path_and_message_filters_keep_matching_messages(
    embedded_broker: EmbeddedBroker, start_capture: StartCapture
) -> None:
    capture, rec = start_capture(
        IotQueueListenerCapture,
        URL=f"{embedded_broker.url}/net/payloads",
        PATH_FILTER=[None, None, ["PLUGIN_A"], None],
        CAP_RESOLUTION=200,
    )
    keep = {"EE_PAYLOAD_PATH": ["n1", "p", "plugin_a", "i1"], "V": 1}
    drop = {"EE_PAYLOAD_PATH": ["n1", "p", "PLUGIN_B", "i1"], "V": 2}
    with publisher(embedded_broker) as pub:
        for _ in range(100):
            pub.publish("net/payloads", json.dumps(keep).encode())
            if rec.wait_items(1, timeout=0.1):
                break
        pub.publish("net/payloads", json.dumps(drop).encode())
        pub.publish("net/payloads", json.dumps({**keep, "V": 3}).encode())
        assert rec.wait_items(2)
    assert rec.data[-1]["V"] == 3
    assert all(d["EE_PAYLOAD_PATH"][2] == "plugin_a" for d in rec.data)
    assert capture.filtered >= 1  # type: ignore[attr-defined]


def test_a_full_queue_drops_the_oldest_messages(
    embedded_broker: EmbeddedBroker, start_capture: StartCapture
) -> None:
    capture, rec = start_capture(
        IotQueueListenerCapture,
        URL=f"{embedded_broker.url}/burst",
        MAX_DEQUE_LEN=2,
        CAP_RESOLUTION=2,
    )
    with publisher(embedded_broker) as pub:
        wait_subscribed(pub, "burst", rec)
        for i in range(10):
            pub.publish("burst", str(i).encode())
        assert wait_until(lambda: capture.dropped >= 8, 3)  # type: ignore[attr-defined]
        assert rec.wait_items(3, timeout=3)
    assert [item.data for item in after_warmup(rec)][-2:] == [8, 9]


@pytest.mark.mosquitto
def test_messages_keep_coming_after_a_broker_restart(
    mosquitto: MosquittoBroker, start_capture: StartCapture
) -> None:
    # Mosquitto, killed and restarted: the transport reconnects and re-subscribes by itself.
    capture, rec = start_capture(
        IotQueueListenerCapture, URL=f"{mosquitto.url}/restart", CAP_RESOLUTION=200
    )
    with publisher(mosquitto) as pub:
        wait_subscribed(pub, "restart", rec)
        listener = capture._transport  # type: ignore[attr-defined]
        mosquitto.kill()
        assert wait_until(lambda: not listener.connected and not pub.connected, 5)
        mosquitto.start(timeout=10)
        assert wait_until(lambda: listener.connected and pub.connected, 10)

        def got_after_restart() -> bool:
            pub.publish("restart", b'"after"')
            return rec.wait_items(1, timeout=0.2) and "after" in rec.data

        assert wait_until(got_after_restart, 10)
        assert listener.connection_count >= 2
    assert rec.errors == []  # the transport reconnected; the capture saw no failure


def test_an_unreachable_broker_is_reported(start_capture: StartCapture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    capture, rec = start_capture(
        IotQueueListenerCapture,
        URL=f"mqtt://127.0.0.1:{port}/x",
        CONNECT_TIMEOUT=0.5,
        RECONNECTABLE=False,
    )
    assert capture.finished.wait(5)
    assert len(rec.errors) == 1 and f"127.0.0.1:{port}" in rec.errors[0]


# ---- pure parts ---------------------------------------------------------------------------


def test_url_parts_including_credentials_and_wildcards() -> None:
    assert parse_mqtt_url("mqtt://us%40r:p%3Ass@broker:1884/a/+/#") == {
        "HOST": "broker",
        "PORT": 1884,
        "USER": "us@r",
        "PASS": "p:ss",
        "TOPIC": "a/+/#",
    }
    assert parse_mqtt_url("mqtt://broker") == {"HOST": "broker"}


def test_top_level_keys_win_over_metadata_which_wins_over_url() -> None:
    source = resolve_source(
        "mqtt://from-url:1000/url-topic",
        {"HOST": None, "PORT": 3000, "TOPIC": None, "QOS": "#DEFAULT"},
        {"PORT": 2000, "TOPIC": "meta-topic", "HOST": "#DEFAULT", "QOS": 0},
    )
    assert source == MqttSource(host="from-url", port=3000, topic="meta-topic", qos=0)
    assert "pass" not in source.describe().lower()


@pytest.mark.parametrize(
    ("wire", "key"),
    [
        ({}, "HOST"),
        ({"HOST": "h"}, "TOPIC"),
        ({"URL": "mqtt://h:99999/t"}, "URL"),
        ({"URL": "http://h/t"}, "URL"),
        ({"URL": "mqtts://h/t"}, "TLS"),
        ({"URL": "mqtt://h/t", "SECURED": True}, "SECURED"),
        ({"URL": "mqtt://h/t", "PORT": "eighty"}, "PORT"),
        ({"URL": "mqtt://h/t", "QOS": 3}, "QOS"),
        ({"URL": "mqtt://h/a/#/b"}, "TOPIC"),
        ({"URL": "mqtt://h/t", "STREAM_CONFIG_METADATA": {"USER": 5}}, "USER"),
    ],
)
def test_bad_broker_settings_are_refused_naming_the_key(wire: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make_config(IotQueueListenerCapture, **wire)


def test_decode_payload() -> None:
    assert decode_payload(b'{"a": [1, 2]}') == ({"a": [1, 2]}, "json")
    assert decode_payload(b"42") == (42, "json")
    assert decode_payload("héllo".encode()) == ("héllo", "text")
    assert decode_payload(b"\x80") == ("gA==", "base64")


def test_message_filters() -> None:
    message = {"EE_PAYLOAD_PATH": ["Node", "pipe", "SIG", "inst"], "A": {"B": 1, "C": 2}}
    no_path = [None, None, None, None]
    assert message_passes(message, {}, no_path)
    assert message_passes(message, {"A": {"B": 1}}, no_path)
    assert not message_passes(message, {"A": {"B": 2}}, no_path)
    assert not message_passes("text", {"A": 1}, no_path)
    assert message_passes(message, {}, ["node", None, ["x", "sig"], None])
    assert not message_passes(message, {}, [None, "other", None, None])
    assert not message_passes("text", {}, [None, "pipe", None, None])
