"""Reliable streams over the in-memory bus: order, exactly-once, resending, restarts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshops.errors import TransportError
from meshops.protocol.constants import Topics
from meshops.transport import (
    STREAM_KEY,
    MemoryBus,
    MemoryTransport,
    Outbox,
    ReliableReceiver,
    ReliableSender,
    ack_body,
    parse_ack,
    parse_stream_header,
    stream_header,
)

from .helpers import InOrderLog, json_decode, json_encoder, wait_until

pytestmark = pytest.mark.timeout(60)

TOPICS = Topics()
PUB, SUB = "0xai_publisher", "0xai_receiver"
DATA_TOPIC = TOPICS.payloads_for(SUB)


@dataclass
class Pair:
    bus: MemoryBus
    sender_t: MemoryTransport
    receiver_t: MemoryTransport
    outbox: Outbox
    sender: ReliableSender
    receiver: ReliableReceiver
    delivered: InOrderLog

    def send(self, i: int) -> int:
        return self.sender.send(SUB, DATA_TOPIC, builder(i))


def builder(i: int) -> Callable[[dict[str, Any]], bytes]:
    encode = json_encoder(PUB)
    return lambda header: encode(SUB, {"I": i, **header})


def start_pair(
    tmp_path: Path, bus: MemoryBus, *, window: int = 100, ack_timeout: float = 0.2
) -> Pair:
    sender_t = bus.client("pub").start()
    receiver_t = bus.client("sub").start()
    outbox = Outbox(tmp_path / "outbox.db")
    sender = ReliableSender(
        sender_t, outbox, PUB, json_decode, window=window, ack_timeout=ack_timeout
    )
    delivered = InOrderLog()
    receiver = ReliableReceiver(
        receiver_t,
        tmp_path / "received.db",
        json_decode,
        json_encoder(SUB),
        delivered,
        ack_interval=0.02,
    )
    receiver.listen(DATA_TOPIC)
    receiver.start()
    sender.start()
    return Pair(bus, sender_t, receiver_t, outbox, sender, receiver, delivered)


def stop_pair(p: Pair) -> None:
    p.sender.stop()
    p.receiver.stop()
    p.sender_t.stop()
    p.receiver_t.stop()
    p.outbox.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = start_pair(tmp_path, MemoryBus())
    yield p
    stop_pair(p)


def test_messages_arrive_in_order_and_are_deleted_when_acked(pair: Pair) -> None:
    seqs = [pair.send(i) for i in range(1, 501)]
    assert seqs == list(range(1, 501))
    assert pair.delivered.wait_for(500, 10)
    assert pair.sender.wait_acked(5)
    assert pair.delivered.items == list(range(1, 501))
    assert len(pair.outbox) == 0
    assert pair.sender.unacked() == 0


def test_the_stream_header_is_given_to_build_before_signing(pair: Pair) -> None:
    headers: list[dict[str, Any]] = []

    def build(header: dict[str, Any]) -> bytes:
        headers.append(header)  # a real builder signs the body with the header inside
        return json.dumps({"SENDER": PUB, "I": 1, **header}).encode()

    assert pair.sender.send(SUB, DATA_TOPIC, build) == 1
    assert headers == [{STREAM_KEY: {"ID": pair.outbox.stream(SUB).stream_id, "SEQ": 1}}]  # type: ignore[union-attr]
    assert pair.delivered.wait_for(1, 5)


def test_lost_messages_and_acks_are_repaired_exactly_once_in_order(tmp_path: Path) -> None:
    seen: set[int] = set()
    acks = 0

    def lossy(topic: str, payload: bytes) -> bool:
        nonlocal acks
        body = json.loads(payload)
        if STREAM_KEY in body:
            seq = body[STREAM_KEY]["SEQ"]
            first = seq not in seen
            seen.add(seq)
            return first and seq % 7 == 0  # lose each 7th message once
        acks += 1
        return acks % 3 == 0  # and every 3rd ack

    p = start_pair(tmp_path, MemoryBus(drop=lossy), window=50, ack_timeout=0.1)
    try:
        for i in range(1, 401):
            p.send(i)
        assert p.delivered.wait_for(400, 30)
        assert p.sender.wait_acked(10)
        assert p.delivered.items == list(range(1, 401))
        assert p.sender.rewinds > 0
        assert p.receiver.gaps > 0
    finally:
        stop_pair(p)


def test_receiver_state_survives_a_restart(tmp_path: Path) -> None:
    bus = MemoryBus()
    delivered = InOrderLog()
    with bus.client("sub") as t:
        r = ReliableReceiver(t, tmp_path / "r.db", json_decode, json_encoder(SUB), delivered)

        def msg(seq: int) -> dict[str, Any]:
            return {"I": seq, STREAM_KEY: {"ID": "s1", "SEQ": seq}}

        assert r.offer(DATA_TOPIC, PUB, msg(1))
        assert not r.offer(DATA_TOPIC, PUB, msg(1))  # duplicate
        r.stop()
        r = ReliableReceiver(t, tmp_path / "r.db", json_decode, json_encoder(SUB), delivered)
        assert r.last_delivered(PUB, "s1") == 1
        assert not r.offer(DATA_TOPIC, PUB, msg(1))  # still a duplicate after restart
        assert not r.offer(DATA_TOPIC, PUB, msg(3))  # a gap
        assert r.offer(DATA_TOPIC, PUB, msg(2))
        assert r.offer(DATA_TOPIC, "0xai_other", msg(1))  # streams are per sender
        r.stop()
    assert delivered.items == [1, 2, 1]


def test_plain_messages_pass_and_bad_headers_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    delivered = InOrderLog()
    with MemoryBus().client("sub") as t:
        r = ReliableReceiver(t, tmp_path / "r.db", json_decode, json_encoder(SUB), delivered)
        assert r.offer(DATA_TOPIC, PUB, {"I": 7})
        with caplog.at_level(logging.WARNING):
            assert not r.offer(DATA_TOPIC, PUB, {"I": 8, STREAM_KEY: {"ID": "s", "SEQ": "1"}})
            r.handle(DATA_TOPIC, b"not json")
        r.stop()
    assert delivered.items == [7]
    assert r.refused == 2
    assert "bad stream header" in caplog.text


def test_acks_from_anyone_but_the_receiver_are_ignored(tmp_path: Path) -> None:
    bus = MemoryBus(drop=lambda topic, payload: topic == DATA_TOPIC)  # receiver never gets it
    p = start_pair(tmp_path, bus)
    try:
        p.send(1)
        stream_id = p.outbox.stream(SUB).stream_id  # type: ignore[union-attr]
        forged = json_encoder("0xai_eve")(PUB, ack_body(stream_id, 1))
        beyond = json_encoder(SUB)(PUB, ack_body(stream_id, 99))
        wrong_stream = json_encoder(SUB)(PUB, ack_body("other", 1))
        for payload in (forged, beyond, wrong_stream):
            p.receiver_t.publish(TOPICS.acks_for(PUB), payload)
        assert not p.sender.wait_acked(0.5)
        assert p.sender.unacked() == 1
        p.receiver_t.publish(TOPICS.acks_for(PUB), json_encoder(SUB)(PUB, ack_body(stream_id, 1)))
        assert p.sender.wait_acked(2)
    finally:
        stop_pair(p)


def test_a_restarted_sender_resumes_its_stream(tmp_path: Path) -> None:
    receiving = False
    bus = MemoryBus(drop=lambda topic, payload: topic == DATA_TOPIC and not receiving)
    p = start_pair(tmp_path, bus)
    for i in range(1, 101):
        p.send(i)
    assert not p.sender.wait_acked(0.3)
    p.sender.stop()
    p.outbox.close()
    receiving = True
    outbox = Outbox(tmp_path / "outbox.db")
    sender = ReliableSender(p.sender_t, outbox, PUB, json_decode, ack_timeout=0.2)
    sender.start()
    p.sender, p.outbox = sender, outbox
    try:
        assert p.send(101) == 101  # the numbering continues
        assert p.delivered.wait_for(101, 10)
        assert sender.wait_acked(5)
        assert p.delivered.items == list(range(1, 102))
        assert len(outbox) == 0
    finally:
        stop_pair(p)


def test_a_failing_deliver_is_logged_and_the_stream_moves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[int] = []

    def deliver(topic: str, sender: str, body: dict[str, Any]) -> None:
        if body["I"] == 2:
            raise RuntimeError("application bug")
        got.append(body["I"])

    with MemoryBus().client("sub") as t, caplog.at_level(logging.ERROR):
        r = ReliableReceiver(t, tmp_path / "r.db", json_decode, json_encoder(SUB), deliver)
        for seq in (1, 2, 3):
            r.offer(DATA_TOPIC, PUB, {"I": seq, STREAM_KEY: {"ID": "s", "SEQ": seq}})
        r.stop()
    assert got == [1, 3]
    assert "application bug" in caplog.text


def test_send_raises_when_the_outbox_is_full(tmp_path: Path) -> None:
    with MemoryBus().client("pub") as t, Outbox(tmp_path / "o.db", max_messages=3) as outbox:
        sender = ReliableSender(t, outbox, PUB, json_decode)
        for i in range(3):
            sender.send(SUB, DATA_TOPIC, builder(i))
        with pytest.raises(TransportError, match="full"):
            sender.send(SUB, DATA_TOPIC, builder(4))
        assert wait_until(lambda: sender.unacked() == 3, 1)


@pytest.mark.parametrize(
    "header",
    [
        {"ID": "s", "SEQ": 0},
        {"ID": "s", "SEQ": True},
        {"ID": "s", "SEQ": "1"},
        {"ID": "", "SEQ": 1},
        {"ID": "x" * 65, "SEQ": 1},
        {"SEQ": 1},
        ["s", 1],
    ],
)
def test_malformed_stream_headers_are_refused(header: object) -> None:
    with pytest.raises(ValueError):
        parse_stream_header({STREAM_KEY: header})


def test_wire_helpers_round_trip() -> None:
    assert parse_stream_header(stream_header("abc", 7)) == ("abc", 7)
    assert parse_stream_header({"I": 1}) is None
    assert parse_ack(ack_body("abc", 0)) == ("abc", 0)
    with pytest.raises(ValueError, match="not an ack"):
        parse_ack({"I": 1})
