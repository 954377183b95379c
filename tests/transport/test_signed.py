"""Reliable streams carried by signed protocol envelopes (``SignedCodec``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meshops.errors import MessageRefused, RefusalReason
from meshops.protocol import Envelope, EventType, MemoryReplayGuard, NodeKey, parse_message
from meshops.protocol.constants import Topics
from meshops.transport import MemoryBus, Outbox, ReliableReceiver, ReliableSender, SignedCodec

from .helpers import InOrderLog, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def parties() -> tuple[SignedCodec, SignedCodec]:
    return (
        SignedCodec(Envelope(NodeKey.generate(), alias="pub")),
        SignedCodec(Envelope(NodeKey.generate(), alias="sub"), MemoryReplayGuard()),
    )


def test_signed_stream_is_delivered_in_order_and_acked(
    parties: tuple[SignedCodec, SignedCodec], tmp_path: Path
) -> None:
    pub, sub = parties
    bus = MemoryBus()
    sender_t, receiver_t = bus.client("pub").start(), bus.client("sub").start()
    topic = Topics().payloads_for(sub.address)
    delivered = InOrderLog()
    senders: list[str] = []
    with Outbox(tmp_path / "outbox.db") as outbox:
        sender = ReliableSender(sender_t, outbox, pub.address, pub.decode_ack)
        receiver = ReliableReceiver(
            receiver_t,
            tmp_path / "rx.db",
            sub.decode,
            sub.encode_ack,
            lambda t, s, b: (senders.append(s), delivered(t, s, b)),
        )
        receiver.listen(topic)
        receiver.start()
        sender.start()
        try:
            for i in range(1, 51):
                sender.send(sub.address, topic, pub.stream_message(sub.address, {"I": i}))
            assert delivered.wait_for(50, 10)
            assert sender.wait_acked(10)
        finally:
            sender.stop()
            receiver.stop()
            sender_t.stop()
            receiver_t.stop()
    assert delivered.items == list(range(1, 51))
    assert set(senders) == {pub.address}


def test_a_forged_ack_does_not_release_messages(
    parties: tuple[SignedCodec, SignedCodec], tmp_path: Path
) -> None:
    """Nobody but the receiver can make the sender forget a message."""
    pub, sub = parties
    stranger = SignedCodec(Envelope(NodeKey.generate(), alias="stranger"))
    bus = MemoryBus()
    sender_t, evil_t = bus.client("pub").start(), bus.client("evil").start()
    topic = Topics().payloads_for(sub.address)  # nobody listens: no real ack can come
    with Outbox(tmp_path / "outbox.db") as outbox:
        sender = ReliableSender(sender_t, outbox, pub.address, pub.decode_ack)
        sender.start()
        try:
            for i in range(1, 6):
                sender.send(sub.address, topic, pub.stream_message(sub.address, {"I": i}))
            stream = outbox.stream(sub.address)
            assert stream is not None
            forged = stranger.encode_ack(
                pub.address, {"MESHOPS_ACK": {"ID": stream.stream_id, "SEQ": 5}}
            )
            evil_t.publish(Topics().acks_for(pub.address), forged, 1)
            assert not wait_until(lambda: sender.unacked(sub.address) == 0, 0.5)
            assert sender.unacked(sub.address) == 5
        finally:
            sender.stop()
            sender_t.stop()
            evil_t.stop()


def test_stream_messages_outlive_the_freshness_window_but_plain_ones_do_not(
    parties: tuple[SignedCodec, SignedCodec],
) -> None:
    pub, sub = parties
    streamed = pub.stream_message(sub.address, {"I": 1})({"MESHOPS_STREAM": {"ID": "s", "SEQ": 1}})
    plain = pub.envelope.encode(EventType.PAYLOAD, {"I": 1}, dest=sub.address)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert parse_message(streamed, own_key=sub.envelope.key, now=later).body["I"] == 1
    with pytest.raises(MessageRefused) as refused:
        parse_message(plain, own_key=sub.envelope.key, now=later)
    assert refused.value.reason is RefusalReason.STALE


def test_tampered_stream_message_is_refused(parties: tuple[SignedCodec, SignedCodec]) -> None:
    pub, sub = parties
    data = pub.stream_message(sub.address, {"I": 1})({"MESHOPS_STREAM": {"ID": "s", "SEQ": 1}})
    tampered = data.replace(b'"SEQ":1', b'"SEQ":2')
    assert tampered != data
    with pytest.raises(MessageRefused) as refused:
        sub.decode(tampered)
    assert refused.value.reason in {RefusalReason.HASH_MISMATCH, RefusalReason.BAD_SIGNATURE}


def test_plain_messages_through_the_codec_are_replay_checked(
    parties: tuple[SignedCodec, SignedCodec],
) -> None:
    pub, sub = parties
    plain = pub.envelope.encode(EventType.PAYLOAD, {"I": 1}, dest=sub.address)
    sender, body = sub.decode(plain)
    assert (sender, body["I"]) == (pub.address, 1)
    with pytest.raises(MessageRefused) as refused:
        sub.decode(plain)
    assert refused.value.reason is RefusalReason.REPLAYED
