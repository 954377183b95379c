"""End to end: reliable streams of signed messages through Mosquitto survive a broker SIGKILL
and a publisher SIGKILL; the receiver gets every message exactly once, in order."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.protocol import Envelope, NodeKey
from meshops.transport import (
    MosquittoBroker,
    MqttTransport,
    Outbox,
    ReliableReceiver,
    ReliableSender,
    SignedCodec,
)

from .helpers import InOrderLog
from .reliable_peer import data_topic

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto, pytest.mark.timeout(120)]

log = logging.getLogger(__name__)

TOTAL = 5000
REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_peer(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A ``reliable_peer`` child process, killed and reaped on the way out."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def publisher_key(tmp_path: Path) -> NodeKey:
    key = NodeKey.generate()
    key.save(tmp_path / "publisher.pem")
    return key


@pytest.fixture
def receiver_codec() -> SignedCodec:
    return SignedCodec(Envelope(NodeKey.generate(), alias="receiver"))


@pytest.fixture
def receiver(
    mosquitto: MosquittoBroker, receiver_codec: SignedCodec, tmp_path: Path
) -> Iterator[InOrderLog]:
    delivered = InOrderLog()
    transport = MqttTransport("127.0.0.1", mosquitto.port, "reliable-receiver")
    receiver = ReliableReceiver(
        transport,
        tmp_path / "received.db",
        receiver_codec.decode,
        receiver_codec.encode_ack,
        delivered,
    )
    receiver.listen(data_topic(receiver_codec.address))
    transport.start(timeout=10)
    receiver.start()
    try:
        yield delivered
    finally:
        receiver.stop()
        transport.stop()


def test_5000_messages_survive_a_broker_sigkill(
    mosquitto: MosquittoBroker,
    receiver: InOrderLog,
    receiver_codec: SignedCodec,
    publisher_key: NodeKey,
    tmp_path: Path,
) -> None:
    codec = SignedCodec(Envelope(publisher_key, alias="publisher"))
    dest = receiver_codec.address
    with Outbox(tmp_path / "outbox.db") as outbox:
        transport = MqttTransport("127.0.0.1", mosquitto.port, "reliable-sender", outbox=outbox)
        sender = ReliableSender(transport, outbox, codec.address, codec.decode_ack)
        transport.start(timeout=10)
        sender.start()

        def feed() -> None:
            """Send flat out, so the kill lands while the broker holds messages in flight."""
            for i in range(1, TOTAL + 1):
                sender.send(dest, data_topic(dest), codec.stream_message(dest, {"I": i}))

        feeder = threading.Thread(target=feed, name="test-feeder")
        try:
            start = time.perf_counter()
            feeder.start()
            assert receiver.wait_for(1500, 30)
            mosquitto.kill()
            at_kill = len(receiver)
            time.sleep(2)  # the feeder goes on: its messages wait in the outbox
            mosquitto.restart()
            feeder.join(30)
            assert not feeder.is_alive()
            assert receiver.wait_for(TOTAL, 60), f"got {len(receiver)} of {TOTAL}"
            assert sender.wait_acked(10)
            elapsed = time.perf_counter() - start
        finally:
            feeder.join(30)
            sender.stop()
            transport.stop()
        assert len(outbox) == 0
    assert at_kill < TOTAL
    assert receiver.items == list(range(1, TOTAL + 1))
    log.warning(
        "%d reliable messages with a broker SIGKILL at %d: %.2f s, %d rewinds",
        TOTAL,
        at_kill,
        elapsed,
        sender.rewinds,
    )


def test_5000_messages_survive_a_publisher_sigkill(
    mosquitto: MosquittoBroker,
    receiver: InOrderLog,
    receiver_codec: SignedCodec,
    publisher_key: NodeKey,
    tmp_path: Path,
) -> None:
    args = [
        "-m",
        "tests.transport.reliable_peer",
        str(mosquitto.port),
        str(tmp_path / "outbox.db"),
        str(tmp_path / "publisher.pem"),
        receiver_codec.address,
        str(TOTAL),
    ]

    start = time.perf_counter()
    with running_peer([*args, "0.01"]) as first:
        assert receiver.wait_for(1500, 30)
        first.kill()
        first.wait(10)
        at_kill = len(receiver)
    with running_peer(args) as second:
        assert second.stdout is not None
        resumed_at = int(second.stdout.readline())
        assert second.wait(90) == 0
    assert receiver.wait_for(TOTAL, 10)
    elapsed = time.perf_counter() - start
    assert receiver.items == list(range(1, TOTAL + 1))
    log.warning(
        "%d reliable messages with a publisher SIGKILL at %d (resumed at seq %d): %.2f s",
        TOTAL,
        at_kill,
        resumed_at,
        elapsed,
    )
