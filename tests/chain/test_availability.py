"""Oracle nodes' epochs (``meshops.node.availability``): sightings, tables, agreement and
signed claims, exchanged as real signed MeshOps messages between three oracles."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meshops.chain import EpochClock, verify_claim
from meshops.errors import MessageRefused
from meshops.node.availability import EpochOracle
from meshops.protocol import Envelope, EventType, NodeKey, parse_message

GENESIS, LENGTH, INTERVAL = 1_000_000, 10, 1.0
CHAIN_ID, REWARDS = 31337, "0x" + "ab" * 20


class Clock:
    def __init__(self) -> None:
        self.now = GENESIS + 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Clock, list[EpochOracle], list[Any]]:
    clock = Clock()
    keys = [NodeKey.generate() for _ in range(3)]
    deployment = tmp_path / "deployment.json"
    deployment.write_text(
        json.dumps(
            {"chain_id": CHAIN_ID, "rewards": REWARDS, "genesis": GENESIS, "epoch_length": LENGTH}
        )
    )
    oracles: list[EpochOracle] = []
    wire: list[Any] = []

    def publisher(key: NodeKey) -> Any:
        envelope = Envelope(key, alias="oracle")

        def publish(body: dict[str, Any]) -> None:
            data = envelope.encode(EventType.PAYLOAD, body, path=["oracle", None, None, None])
            wire.append(data)
            for oracle in oracles:  # the broker: every oracle gets it, the sender too
                oracle.on_message(parse_message(data))

        return publish

    for i, key in enumerate(keys):
        oracles.append(
            EpochOracle(
                key,
                EpochClock(GENESIS, LENGTH),
                INTERVAL,
                oracles=[k.eth_address for k in keys],
                threshold=2,
                deployment=deployment,
                publish=publisher(key),
                out_dir=tmp_path / f"oracle-{i}",
                now=clock,
            )
        )
    return clock, oracles, wire


def heartbeat(key: NodeKey) -> Any:
    data = Envelope(key, alias="node").encode(EventType.HEARTBEAT, {"X": 1})
    return parse_message(data)


def test_three_oracles_agree_on_the_median_and_sign_it(
    setup: tuple[Clock, list[EpochOracle], list[Any]], tmp_path: Path
) -> None:
    clock, oracles, _ = setup
    steady, flaky = NodeKey.generate(), NodeKey.generate()
    for second in range(LENGTH):  # epoch 0: each oracle hears steady in every slot, and
        clock.now = GENESIS + second + 0.5  # flaky in 2, 5 and 8 slots of 10
        for i, oracle in enumerate(oracles):
            _fresh(oracle, steady)
            if second < (2, 5, 8)[i]:
                _fresh(oracle, flaky)
    clock.now = GENESIS + LENGTH + 0.6
    for oracle in oracles:
        oracle.tick()  # tables out
    for oracle in oracles:
        oracle.tick()  # all three tables in: agree and sign
    for oracle in oracles:
        oracle.tick()  # write what came in since
    files = [json.loads((tmp_path / f"oracle-{i}" / "0.json").read_text()) for i in range(3)]
    agreed = files[0]["agreed"]
    assert agreed == {steady.eth_address: 255, flaky.eth_address: 127}  # median of 51/127/204
    assert all(f["agreed"] == agreed for f in files)
    signers = files[0]["claims"][flaky.eth_address]["127"]
    assert len(signers) == 3  # its own and the two others it received
    signatures = [bytes.fromhex(s[2:]) for s in signers.values()]
    assert verify_claim(
        signatures,
        [o.me for o in oracles],
        2,
        chain_id=CHAIN_ID,
        rewards=REWARDS,
        node=flaky.eth_address,
        epochs=[0],
        availabilities=[127],
    ) == list(signers)


def _at(message: Any, now: float) -> Any:
    """``message`` as if signed at ``now`` (the oracles' fake clock)."""
    stamp = message.timestamp
    return replace(message, timestamp=stamp.fromtimestamp(now, stamp.tzinfo))


def _fresh(oracle: EpochOracle, key: NodeKey) -> None:
    oracle.on_heartbeat(_at(heartbeat(key), oracle._now()))


def test_replayed_or_stale_heartbeats_do_not_count(
    setup: tuple[Clock, list[EpochOracle], list[Any]],
) -> None:
    clock, oracles, _ = setup
    oracle = oracles[0]
    node = NodeKey.generate()
    clock.now = GENESIS + 0.5
    fresh = _at(heartbeat(node), clock.now)
    oracle.on_heartbeat(fresh)
    for second in range(1, LENGTH):
        clock.now = GENESIS + second + 0.5
        oracle.on_heartbeat(fresh)  # the same message again: a replay, and older by the second
    assert oracle.table(0) == {node.eth_address: 25}  # one slot of ten


def test_bad_oracle_messages_are_refused(
    setup: tuple[Clock, list[EpochOracle], list[Any]],
) -> None:
    clock, oracles, _ = setup
    oracle = oracles[0]
    clock.now = GENESIS + 2 * LENGTH + 1
    stranger = Envelope(NodeKey.generate(), alias="x")
    insider = Envelope(oracles[1].key, alias="y")

    def send(envelope: Envelope, body: dict[str, Any]) -> None:
        oracle.on_message(parse_message(envelope.encode(EventType.PAYLOAD, body)))

    with pytest.raises(MessageRefused, match="not an oracle"):
        send(stranger, {"KIND": "TABLE", "EPOCH": 1, "AVAILABILITY": {}})
    with pytest.raises(MessageRefused, match="EPOCH"):
        send(insider, {"KIND": "TABLE", "EPOCH": "1", "AVAILABILITY": {}})
    with pytest.raises(MessageRefused, match="not a recent one"):
        send(insider, {"KIND": "TABLE", "EPOCH": 2, "AVAILABILITY": {}})
    with pytest.raises(MessageRefused, match="AVAILABILITY"):
        send(insider, {"KIND": "TABLE", "EPOCH": 1, "AVAILABILITY": {oracle.me: 256}})
    with pytest.raises(MessageRefused, match="KIND"):
        send(insider, {"KIND": "VOTE", "EPOCH": 1})
    forged = {oracle.me: [200, "0x" + "11" * 65]}
    body = {"KIND": "CLAIMS", "EPOCH": 1, "CHAIN_ID": CHAIN_ID, "REWARDS": REWARDS}
    with pytest.raises(MessageRefused):
        send(insider, {**body, "CLAIMS": forged})
    with pytest.raises(MessageRefused, match="another deployment"):
        send(insider, {**body, "CHAIN_ID": 1, "CLAIMS": {}})
    send(insider, {"KIND": "TABLE", "EPOCH": 1, "AVAILABILITY": {oracle.me: 200}})  # a good one
