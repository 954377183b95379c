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


# ---- pruning and serving signatures -------------------------------------------------------


def _claims_file(directory: Path, epoch: int, node: str, value: int, keys: list[NodeKey]) -> None:
    """An epoch file as an oracle writes it, with ``keys``' signatures over ``value``."""
    from meshops.chain.oracle import sign_claim

    signed = {
        k.eth_address: "0x" + sign_claim(k, CHAIN_ID, REWARDS, node, [epoch], [value]).hex()
        for k in keys
    }
    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "epoch": epoch,
        "chain_id": CHAIN_ID,
        "rewards": REWARDS,
        "agreed": {node: value},
        "claims": {node: {str(value): signed}},
    }
    (directory / f"{epoch}.json").write_text(json.dumps(data))


def test_old_epoch_files_are_pruned_keeping_the_retention(
    setup: tuple[Clock, list[EpochOracle], list[Any]],
) -> None:
    from meshops.node.availability import MIN_KEPT_FILES

    clock, oracles, _ = setup
    oracle = oracles[0]
    assert oracle.keep_files == 90 * 86400 // LENGTH  # 90 days of 10 s epochs
    oracle.keep_files = MIN_KEPT_FILES
    out = oracle.out_dir
    out.mkdir(parents=True)
    for epoch in range(MIN_KEPT_FILES + 50):
        (out / f"{epoch}.json").write_text("{}")
    (out / "notes.txt").write_text("not an epoch file")
    clock.now = GENESIS + (MIN_KEPT_FILES + 60) * LENGTH + 1  # current epoch: 1060
    oracle.tick()
    kept = sorted(int(p.stem) for p in out.glob("*.json"))
    # the last 1000 epochs before 1060 (the tick also wrote the recent ones, 1056-1059)
    assert kept == list(range(60, MIN_KEPT_FILES + 50)) + [1056, 1057, 1058, 1059]
    assert (out / "notes.txt").exists()
    clock.now += 5 * LENGTH  # later prunes go by the index, five more files
    oracle.tick()
    assert min(int(p.stem) for p in out.glob("*.json")) == 65


def test_a_tiny_retention_still_keeps_the_minimum(tmp_path: Path) -> None:
    from meshops.node.availability import MIN_KEPT_FILES

    key = NodeKey.generate()
    oracle = EpochOracle(
        key,
        EpochClock(GENESIS, LENGTH),
        INTERVAL,
        oracles=[key.eth_address],
        threshold=1,
        deployment=None,
        publish=lambda body: None,
        out_dir=tmp_path,
        retention_days=0.001,
    )
    assert oracle.keep_files == MIN_KEPT_FILES


def _request(
    oracle: EpochOracle, asker: Envelope, body: dict[str, Any], *, zoned: bool = True
) -> Any:
    message = parse_message(asker.encode(EventType.PAYLOAD, {"ORACLE_DATA": body}))
    if not zoned:
        message = replace(message, timestamp=None)
    return oracle.on_request(message)


def test_claims_are_served_in_pages_and_bad_requests_refused(
    setup: tuple[Clock, list[EpochOracle], list[Any]],
) -> None:
    from meshops.node.availability import MAX_ANSWER_EPOCHS, RateLimit
    from meshops.sdk.claims import Query, read_answer

    clock, oracles, _ = setup
    oracle = oracles[0]
    keys = [o.key for o in oracles]
    node = NodeKey.generate().eth_address
    for epoch in range(MAX_ANSWER_EPOCHS + 10):
        _claims_file(oracle.out_dir, epoch, node, 200, keys[:2])
    answers: list[tuple[str, dict[str, Any]]] = []
    oracle.answer = lambda asker, body: answers.append((asker, body))
    asker = Envelope(NodeKey.generate(), alias="owner")
    ask = {"OP": "GET_CLAIMS", "ID": "r1", "NODE": node.lower(), "FROM": 5, "TO": 1000}
    _request(oracle, asker, ask)
    ((to, body),) = answers
    page = body["ORACLE_DATA"]
    assert to == asker.key.address and page["ID"] == "r1"
    assert [e["EPOCH"] for e in page["EPOCHS"]] == list(range(5, 5 + MAX_ANSWER_EPOCHS))
    assert page["NEXT"] == 5 + MAX_ANSWER_EPOCHS

    # the answer as the owner reads it: every signature recovered, a forged one dropped
    page["EPOCHS"][0]["SIGNATURES"]["200"][keys[2].eth_address] = "0x" + "11" * 65
    reply = parse_message(Envelope(oracle.key, alias="o").encode(EventType.PAYLOAD, body))
    read = read_answer(
        reply,
        oracles={o.me for o in oracles},
        chain_id=CHAIN_ID,
        rewards=REWARDS,
        query=Query(node, 5, 1000),
    )
    assert read.next == 5 + MAX_ANSWER_EPOCHS and read.rejected == 1
    assert len(read.signatures) == MAX_ANSWER_EPOCHS
    assert set(read.signatures[(node, 5)][200]) == {k.eth_address for k in keys[:2]}

    bad = [
        ({**ask, "OP": "SET_CLAIMS"}, "OP must be GET_CLAIMS"),
        ({**ask, "NODE": "0x123"}, "NODE"),
        ({**ask, "FROM": -1}, "FROM"),
        ({**ask, "FROM": 9, "TO": 3}, "FROM"),
        ({**ask, "TO": "all"}, "FROM"),
        ({**ask, "ID": "x" * 65}, "ID"),
    ]
    for body_, match in bad:
        with pytest.raises(MessageRefused, match=match):
            _request(oracle, asker, body_)
    with pytest.raises(MessageRefused, match="EE_TZ"):
        _request(oracle, asker, ask, zoned=False)
    with pytest.raises(MessageRefused, match="OP must be GET_CLAIMS"):
        oracle.on_request(parse_message(asker.encode(EventType.PAYLOAD, {"ORACLE_DATA": [1]})))
    assert len(answers) == 1  # none of those was answered

    oracle.rate_limit = RateLimit(per_asker=(3, 1e-6), total=(100, 1.0))
    answers.clear()
    for _ in range(3):
        _request(oracle, asker, {**ask, "FROM": 300})
    with pytest.raises(MessageRefused, match="rate limit"):
        _request(oracle, asker, ask)
    _request(oracle, Envelope(NodeKey.generate(), alias="other"), ask)  # another asker: served
    assert len(answers) == 4 and answers[0][1]["ORACLE_DATA"]["EPOCHS"] == []
