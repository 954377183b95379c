"""A secured node refuses what it must, counts why, tells the SDK, and keeps working.

Each test sends the node something it must not obey (a forged, replayed, stale or misaddressed
command, one from a stranger, junk, a flood) through a real Mosquitto, then checks that:

- nothing was applied: ``node.pipelines.names()`` and ``node.store.pipelines()`` unchanged;
- the refusal was counted in ``node.refusals`` under the right reason (and nothing else was);
- the node still works: a valid command from an allowed sender deploys a pipeline whose
  payloads arrive.

The last tests are regressions for holes found while writing these (see their docstrings).
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import json
import os
import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from meshops.node import Node
from meshops.node.messages import encode_compressed
from meshops.protocol import (
    MAX_MESSAGE_BYTES,
    TIMESTAMP_FORMAT,
    Envelope,
    NodeKey,
    encode_message,
    encrypt,
    message_hash,
    sign_message,
)
from meshops.transport import MosquittoBroker
from tests.node.helpers import (
    Client,
    decode_heartbeat,
    echo_pipeline,
    no_leaked_threads,  # noqa: F401  (autouse here: every test stops what it starts)
    refusal_delta,
    running_node,
    wait_until,
)

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(60)]

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(autouse=True)
def _no_leaks(no_leaked_threads: None) -> None:  # noqa: F811
    """Checked after the node and the broker of each test are gone."""


@pytest.fixture
def node(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[Node]:
    """A secured node (the default) with 1 s heartbeats."""
    with running_node(mosquitto.url, tmp_path / "node") as started:
        assert started.settings.secured
        yield started


@pytest.fixture
def client(mosquitto: MosquittoBroker, node: Node) -> Iterator[Client]:
    """An allowed sender (on the node's allow-list) that also watches what the node says."""
    with Client(mosquitto.port, alias="owner") as started:
        node.store.allow(started.address)
        started.wait_listening(node)
        yield started


@pytest.fixture
def stranger(mosquitto: MosquittoBroker) -> Iterator[Client]:
    """A sender with a valid key that the node does not know."""
    with Client(mosquitto.port, alias="stranger") as started:
        yield started


# ---- helpers ------------------------------------------------------------------------------------


def state(node: Node) -> tuple[list[str], dict[str, Any]]:
    """What runs and what is stored: neither may change when a command is refused."""
    return node.pipelines.names(), node.store.pipelines()


def wait_processed(node: Node, count: int, since: int, timeout: float = 10.0) -> None:
    """Wait until ``node`` has taken ``count`` messages more than ``since`` (``node.received``)
    and finished with them (its counters stop moving)."""
    assert wait_until(lambda: node.received >= since + count, timeout), (
        f"node took {node.received - since} of {count} messages in {timeout} s"
    )
    last: tuple[int, int, int] | None = None
    while True:
        now = (node.received, sum(node.refusals.values()), node.commands.applied)
        if now == last:
            return
        last = now
        time.sleep(0.15)


def assert_still_works(node: Node, client: Client, name: str) -> None:
    """A valid command from an allowed sender deploys ``name``, and its payloads flow."""
    mark = client.mark()
    client.deploy(node, echo_pipeline(name))
    assert name in node.pipelines.names()
    assert name in node.store.pipelines()
    assert client.wait_payloads(node, name, 2, since=mark, timeout=10), f"no payloads from {name}"


def restamp(msg: dict[str, Any], key: NodeKey, when: dt.datetime) -> dict[str, Any]:
    """``msg`` stamped ``when`` (aware: ``EE_TIMESTAMP``, ``EE_TZ``, ``EE_TIMEZONE``), re-signed."""
    zone = when.tzinfo
    name = getattr(zone, "key", "UTC")
    offset = int((when.utcoffset() or dt.timedelta()).total_seconds() // 3600)
    edited = {
        **msg,
        "EE_TIMESTAMP": when.strftime(TIMESTAMP_FORMAT),
        "EE_TZ": name,
        "EE_TIMEZONE": f"UTC{offset:+d}",
    }
    return sign_message(edited, key)


class ShiftedEnvelope(Envelope):
    """An ``Envelope`` whose clock is ``shift`` off: a sender with a wrong (or patched) clock."""

    def __init__(self, key: NodeKey, alias: str, shift: dt.timedelta) -> None:
        super().__init__(key, alias=alias)
        self.shift = shift

    def _now(self) -> tuple[dt.datetime, str | None]:
        now, zone = super()._now()
        return now + self.shift, zone


def high_s(signature_b64: str) -> str:
    """The other valid ECDSA signature of the same digest: (r, n - s), DER, base64url."""
    r, s = decode_dss_signature(base64.urlsafe_b64decode(signature_b64))
    return base64.urlsafe_b64encode(encode_dss_signature(r, SECP256K1_ORDER - s)).decode()


# ---- forged, misaddressed, replayed, stale ------------------------------------------------------


def test_forged_signature_is_refused(node: Node, client: Client) -> None:
    attacker = NodeKey.generate()
    before, snap = state(node), dict(node.refusals)
    received = node.received

    # 1. a genuine (encrypted) command re-signed by another key, EE_SENDER set back to the
    #    allowed address: the data, hence EE_HASH, are those of a genuine message
    genuine = client.command(node, "UPDATE_CONFIG", echo_pipeline("forged1"))
    resigned = sign_message(genuine, attacker)
    resigned["EE_SENDER"] = client.address
    resigned["EE_ETH_SENDER"] = client.key.eth_address
    assert resigned["EE_HASH"] == genuine["EE_HASH"]
    # 2. the attacker's own clear command, claiming to be the allowed sender
    own = Envelope(attacker, alias="attacker").build(
        "COMMAND",
        {"ACTION": "UPDATE_CONFIG", "PAYLOAD": echo_pipeline("forged2")},
        extra={"EE_ID": node.address, "SESSION_ID": "s1"},
    )
    own["EE_SENDER"] = client.address
    own["EE_ETH_SENDER"] = client.key.eth_address
    # 3. a genuine message wearing the signature of another genuine message
    other = client.command(node, "UPDATE_CONFIG", echo_pipeline("forged3b"))
    transplant = {
        **client.command(node, "UPDATE_CONFIG", echo_pipeline("forged3")),
        "EE_SIGN": other["EE_SIGN"],
    }
    # 4. a clear command whose PAYLOAD was changed after signing
    clear = client.command(node, "UPDATE_CONFIG", echo_pipeline("forged4"), encrypt=False)
    tampered = json.loads(json.dumps(clear))
    tampered["PAYLOAD"]["NAME"] = "forged4-changed"
    # 5. an encrypted command carrying the ciphertext of another of the sender's commands
    spliced = {
        **client.command(node, "ARCHIVE_CONFIG", "x"),
        "EE_ENCRYPTED_DATA": other["EE_ENCRYPTED_DATA"],
    }
    # 6. a changed body with EE_HASH recomputed: the signature no longer matches
    rehashed = json.loads(json.dumps(clear))
    rehashed["PAYLOAD"]["NAME"] = "forged6"
    rehashed["EE_HASH"] = message_hash(rehashed)
    # 7. the session id (a clear field) changed after signing
    session = {
        **client.command(node, "UPDATE_CONFIG", echo_pipeline("forged7")),
        "SESSION_ID": "hijacked",
    }

    forgeries = [resigned, own, transplant, tampered, spliced, rehashed, session]
    for msg in forgeries:
        client.send(node, msg)
    wait_processed(node, len(forgeries), received)

    assert state(node) == before
    assert refusal_delta(node, snap) == {"bad_signature": 4, "hash_mismatch": 3}
    # the forgery of (1) carried the genuine hash: the replay guard must not have remembered it,
    # or a forger could block genuine commands by sending their hash first
    client.send(node, genuine)
    assert client.wait_notification(node, 1, "forged1", timeout=10) is not None
    assert "forged1" in node.pipelines.names()
    assert_still_works(node, client, "after-forgery")


def test_command_naming_another_node_is_refused(node: Node, client: Client) -> None:
    other = NodeKey.generate()
    before, snap = state(node), dict(node.refusals)
    received = node.received
    config = echo_pipeline("elsewhere")
    misaddressed = [
        # EE_ID names another node (by address, Ethereum address, alias), body encrypted to us
        client.command(node, "UPDATE_CONFIG", config, ee_id=other.address),
        client.command(node, "UPDATE_CONFIG", config, ee_id=other.eth_address),
        client.command(node, "UPDATE_CONFIG", config, ee_id="n2"),
        # no EE_ID naming anyone: the envelope's default is the sender's own alias
        {k: v for k, v in client.command(node, "UPDATE_CONFIG", config).items()} | {"EE_ID": None},
        # EE_DEST (and encryption) for another node, published on our config topic
        client.command(node, "UPDATE_CONFIG", config, ee_id=node.address, dest=other.address),
        client.command(node, "UPDATE_CONFIG", config, ee_id=node.address, dest=[other.address]),
    ]
    # the EE_ID=None one must be re-signed to be a valid message
    misaddressed[3] = sign_message(misaddressed[3], client.key)
    for msg in misaddressed:
        client.send(node, msg)
    wait_processed(node, len(misaddressed), received)

    assert state(node) == before
    assert refusal_delta(node, snap) == {"not_for_me": len(misaddressed)}
    # the same command naming this node, by each of its names, is obeyed
    for i, name in enumerate((node.address, node.key.eth_address, node.alias)):
        mark = client.mark()
        client.send(node, client.command(node, "UPDATE_CONFIG", echo_pipeline(f"n{i}"), ee_id=name))
        assert client.wait_notification(node, 1, f"n{i}", since=mark) is not None, name
    assert_still_works(node, client, "after-misaddressed")


def test_replayed_command_is_applied_exactly_once(node: Node, client: Client) -> None:
    deploy = client.deploy(node, echo_pipeline("r1"))  # applied once: PIPELINE_OK seen
    mark = client.mark()
    client.send(node, client.command(node, "ARCHIVE_CONFIG", "r1"))
    assert client.wait_notification(node, 4, "r1", since=mark) is not None
    assert "r1" not in node.pipelines.names()
    before, snap = state(node), dict(node.refusals)
    applied, received = node.commands.applied, node.received

    client.send(node, deploy)  # the same bytes once more
    wait_processed(node, 1, received)
    assert refusal_delta(node, snap) == {"replayed": 1}
    assert state(node) == before
    for _ in range(100):
        client.send(node, deploy)
    # the same message, other bytes: re-serialised, and with the other valid (high-S) signature
    original = json.loads(deploy)
    client.send(node, json.dumps(original, indent=1, sort_keys=True).encode())
    client.send(node, {**original, "EE_SIGN": high_s(original["EE_SIGN"])})
    wait_processed(node, 103, received)

    assert refusal_delta(node, snap) == {"replayed": 103}
    assert state(node) == before
    assert node.commands.applied == applied
    deployed = client.notifications(node, where=lambda m: m.body.get("NOTIFICATION_CODE") == 1)
    assert [m.path[1] for m in deployed].count("r1") == 1
    assert_still_works(node, client, "after-replay")


def test_replay_guard_survives_a_restart(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    home = tmp_path / "node"
    with Client(mosquitto.port) as client:
        with running_node(mosquitto.url, home) as node:
            node.store.allow(client.address)
            client.wait_listening(node)
            deploy = client.deploy(node, echo_pipeline("r1"))
            mark = client.mark()
            client.send(node, client.command(node, "ARCHIVE_CONFIG", "r1"))
            assert client.wait_notification(node, 4, "r1", since=mark) is not None
        with running_node(mosquitto.url, home) as node:
            client.wait_listening(node)
            before, snap, received = state(node), dict(node.refusals), node.received
            assert before == ([], {})
            client.send(node, deploy)
            wait_processed(node, 1, received)
            assert refusal_delta(node, snap) == {"replayed": 1}
            assert state(node) == before
            assert_still_works(node, client, "after-restart")


def test_stale_command_is_refused(node: Node, client: Client) -> None:
    before, snap = state(node), dict(node.refusals)
    received = node.received
    window, skew = node.settings.replay_window_s, node.settings.future_skew_s
    now = dt.datetime.now(dt.UTC)
    config = echo_pipeline("stale")
    fresh = client.command(node, "UPDATE_CONFIG", config)
    stale = [
        # edited, then re-signed by the allowed sender: older than the window, in the future
        restamp(fresh, client.key, now - dt.timedelta(seconds=window + 30)),
        restamp(fresh, client.key, now + dt.timedelta(seconds=skew + 30)),
        # an hour old in another zone (the zone must be taken into account)
        restamp(
            fresh, client.key, (now - dt.timedelta(hours=1)).astimezone(ZoneInfo("Asia/Tokyo"))
        ),
        # built by an envelope whose clock is off (a patched clock)
        ShiftedEnvelope(client.key, "owner", dt.timedelta(seconds=-(window + 5))).build(
            "COMMAND",
            {"ACTION": "UPDATE_CONFIG", "PAYLOAD": config},
            dest=node.address,
            encrypt=True,
            extra={"EE_ID": node.address, "SESSION_ID": "s1"},
        ),
    ]
    for msg in stale:
        client.send(node, msg)
    wait_processed(node, len(stale), received)
    assert state(node) == before
    assert refusal_delta(node, snap) == {"stale": len(stale)}

    # inside the window (and in another zone) the same command is obeyed
    ok = restamp(
        client.command(node, "UPDATE_CONFIG", echo_pipeline("within-window")),
        client.key,
        (now - dt.timedelta(seconds=window / 2)).astimezone(ZoneInfo("America/New_York")),
    )
    mark = client.mark()
    client.send(node, ok)
    assert client.wait_notification(node, 1, "within-window", since=mark) is not None
    assert_still_works(node, client, "after-stale")


# ---- strangers ----------------------------------------------------------------------------------


def test_unknown_sender_is_refused_and_told_so(
    node: Node, client: Client, stranger: Client
) -> None:
    marker = f"TOP-SECRET-{os.urandom(6).hex()}"
    client.deploy(node, echo_pipeline("secret", PREFIX=marker))
    secret_config = node.store.pipelines()["secret"]
    before, snap = state(node), dict(node.refusals)
    received, mark = node.received, client.mark()

    intruder = {
        "NAME": "intruder",
        "TYPE": "Void",
        "PLUGINS": [
            {"SIGNATURE": "ECHO_01", "INSTANCES": [{"INSTANCE_ID": "a1"}, {"INSTANCE_ID": "a2"}]}
        ],
    }
    session = "evil-session"
    commands = [
        stranger.command(node, "UPDATE_CONFIG", intruder, session=session),
        stranger.command(node, "ARCHIVE_CONFIG", "secret", session=session),
        stranger.command(
            node,
            "UPDATE_PIPELINE_INSTANCE",
            {
                "NAME": "secret",
                "SIGNATURE": "ECHO_01",
                "INSTANCE_ID": "e1",
                "INSTANCE_CONFIG": {"PREFIX": "pwned"},
            },
            session=session,
        ),
        stranger.command(node, "DELETE_CONFIG_ALL", session=session),
        stranger.command(node, "RESTART", session=session),
        stranger.command(node, "STOP", session=session),
    ]
    for msg in commands:
        stranger.send(node, msg)
    # and the network-config request the SDK sends: a stranger must not get the configs
    get_config = stranger.envelope.build(
        "PAYLOAD",
        {"NET_CONFIG_DATA": {"OP": "GET_CONFIG", "DEST": [node.address]}},
        path=[stranger.address, "admin_pipeline", "NET_CONFIG_MONITOR", None],
        dest=node.address,
        encrypt=True,
    )
    stranger.send(node, get_config, topic=stranger.topics.payloads_for(node.address))
    wait_processed(node, len(commands) + 1, received)

    assert refusal_delta(node, snap) == {"unauthorized": len(commands) + 1}
    assert state(node) == before
    assert node.store.pipelines()["secret"] == secret_config
    assert not node.stop_requested.is_set()

    # the failure codes an SDK waits for, so that deploy()/close() fail at once
    assert client.wait_notification(node, -1, "intruder", since=mark) is not None
    for instance in ("a1", "a2"):
        assert client.wait_for(
            1,
            5,
            since=mark,
            topic=client.topics.notif,
            where=lambda m, i=instance: (
                m.body.get("NOTIFICATION_CODE") == -100
                and m.path == (node.alias, "intruder", "ECHO_01", i)
            ),
        ), f"no -100 for intruder/{instance}"
    assert client.wait_notification(node, -4, "secret", since=mark) is not None
    assert client.wait_notification(node, -5000, since=mark) is not None
    time.sleep(0.5)  # let every notification the refusals caused arrive
    refused = client.notifications(node, since=mark)
    assert all(m.body["NOTIFICATION_CODE"] < 0 for m in refused), [
        (m.body["NOTIFICATION_CODE"], m.path) for m in refused
    ]
    assert any(m.body.get("SESSION_ID") == session for m in refused)
    # ... and nothing about the node's pipelines: not the secret config, not even its name
    # outside the refusal of the stranger's own command naming it
    for seen in client.seen[mark:]:
        if seen.topic == client.topics.notif:
            assert marker.encode() not in seen.data
    assert not stranger.messages(topic=stranger.topics.payloads_for(stranger.address))
    leaking = [m for m in refused if m.path[1] not in ("intruder", "secret", None)]
    assert not leaking
    # heartbeats carry no pipeline configs either
    heartbeat = client.wait_heartbeat(node, since=mark)
    assert heartbeat is not None and heartbeat["CONFIG_STREAMS"] == []
    assert marker not in json.dumps(heartbeat)
    # the secret pipeline still runs, unchanged
    assert client.wait_payloads(node, "secret", 2, since=mark)
    assert all(m.body["PREFIX"] == marker for m in client.payloads(node, "secret", since=mark))

    # an allowed sender does get the configs (so the checks above could have seen a leak)
    reply_mark = client.mark()
    client.send(
        node,
        client.envelope.build(
            "PAYLOAD",
            {"NET_CONFIG_DATA": {"OP": "GET_CONFIG", "DEST": [node.address]}},
            path=[client.address, "admin_pipeline", "NET_CONFIG_MONITOR", None],
            dest=node.address,
            encrypt=True,
        ),
        topic=client.topics.payloads_for(node.address),
    )
    replies = client.wait_for(
        1, 10, since=reply_mark, topic=client.topics.payloads_for(client.address)
    )
    assert replies and marker in json.dumps(replies[0].body)

    # allowing the stranger takes effect at once
    node.store.allow(stranger.address)
    mark = client.mark()
    stranger.send(node, stranger.command(node, "UPDATE_CONFIG", echo_pipeline("welcome")))
    assert client.wait_notification(node, 1, "welcome", since=mark) is not None
    assert_still_works(node, client, "after-stranger")


# ---- junk ---------------------------------------------------------------------------------------


def test_malformed_json_is_refused(node: Node, client: Client) -> None:
    before, snap = state(node), dict(node.refusals)
    received = node.received
    encrypted_junk = sign_message(
        {
            **{k: v for k, v in client.command(node, "STOP").items()},
            "EE_ENCRYPTED_DATA": encrypt("{not json", node.address, client.key),
        },
        client.key,
    )
    junk: list[bytes] = [
        b"",
        b"{",
        b"{not json}",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"NaN",
        b"\xff\xfe\x00garbage",
        b'{"a": 1, "a": 2}',  # duplicate keys: parsers disagree on which one wins
        b"[" * 100_000 + b"]" * 100_000,
        b'{"x": ' * 5000 + b"1" + b"}" * 5000,
        json.dumps(client.command(node, "STOP"))[:-1].encode(),  # truncated valid command
        encode_message(encrypted_junk),  # signed, but the encrypted body is not JSON
    ]
    for data in junk:
        client.send(node, data)
    wait_processed(node, len(junk), received)
    assert state(node) == before
    assert not node.stop_requested.is_set()
    assert refusal_delta(node, snap) == {"bad_json": len(junk)}
    assert_still_works(node, client, "after-junk")


def test_oversized_message_is_refused(node: Node, client: Client) -> None:
    before, snap = state(node), dict(node.refusals)
    received = node.received
    pad = "x" * (MAX_MESSAGE_BYTES + 1024)
    big_command = client.command(
        node, "UPDATE_CONFIG", echo_pipeline("huge"), extra={"PAD": pad}
    )  # signed by an allowed sender: still refused unread
    blobs = [
        encode_message(big_command),
        os.urandom(MAX_MESSAGE_BYTES + 1),
        b"{" + b" " * (3 * MAX_MESSAGE_BYTES) + b"}",
    ]
    assert all(len(b) > MAX_MESSAGE_BYTES for b in blobs)
    for data in blobs:
        client.send(node, data)
    client.send(node, blobs[0], topic=client.topics.payloads_for(node.address))
    wait_processed(node, len(blobs) + 1, received, timeout=20)
    assert state(node) == before
    assert refusal_delta(node, snap) == {"too_large": len(blobs) + 1}
    assert_still_works(node, client, "after-oversized")


def test_refusal_counters_are_in_the_heartbeat(
    node: Node, client: Client, stranger: Client
) -> None:
    received = node.received
    for _ in range(3):
        client.send(node, b"junk")
    stranger.send(node, stranger.command(node, "STOP"))
    wait_processed(node, 4, received)
    counts = dict(node.refusals)
    assert counts.get("bad_json", 0) >= 3 and counts.get("unauthorized") == 1
    beats = client.wait_for(
        1,
        5,
        topic=client.topics.ctrl,
        sender=node.address,
        where=lambda m: decode_heartbeat(m).get("MESHOPS_RECEIVED") == node.received,
    )
    assert beats, "no heartbeat reporting what the node received"
    heartbeat = decode_heartbeat(beats[0])
    assert beats[0].body["HEARTBEAT_VERSION"] == "v2"  # counters inside ENCODED_DATA
    assert "MESHOPS_REFUSED" not in beats[0].body
    assert heartbeat["MESHOPS_REFUSED"] == counts


# ---- a flood ------------------------------------------------------------------------------------


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One character replaced by one that is never valid in hex (so EE_ETH_SIGN breaks too)."""
    text = bytearray(data)
    i = rng.randrange(len(text))
    text[i] = rng.choice(b"#Zq~!:{") if text[i] not in b"#Zq~!:{" else ord("@")
    return bytes(text)


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.randint(-(2**70), 2**70)
    if kind == 1:
        return rng.random() * 1e6
    if kind == 2:
        return rng.choice([None, True, False, "", "0xai_", "v2", "UPDATE_CONFIG"])
    if kind == 3:
        return os.urandom(rng.randint(0, 40)).hex()
    if kind == 4:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = [
        "EE_SENDER",
        "EE_SIGN",
        "EE_HASH",
        "EE_DEST",
        "EE_ID",
        "EE_IS_ENCRYPTED",
        "EE_ENCRYPTED_DATA",
        "EE_TIMESTAMP",
        "EE_TZ",
        "EE_PAYLOAD_PATH",
        "ACTION",
        "PAYLOAD",
        "SIGN_CANON_V",
        "HEARTBEAT_VERSION",
        "ENCODED_DATA",
        "TIME",
    ]
    return {
        rng.choice(keys) if rng.random() < 0.7 else os.urandom(4).hex(): _random_json(
            rng, depth + 1
        )
        for _ in range(rng.randint(0, 8))
    }


def _flood(node: Node, stranger: Client, total: int, seed: int) -> list[tuple[str, bytes]]:
    """``total`` messages a node must refuse, on its config, payloads and ctrl topics."""
    rng = random.Random(seed)
    topics = stranger.topics
    config, inbox, ctrl = (
        topics.config(node.address),
        topics.payloads_for(node.address),
        topics.ctrl,
    )
    other = NodeKey.generate()
    actions = [
        "UPDATE_CONFIG",
        "ARCHIVE_CONFIG",
        "STOP",
        "RESTART",
        "DELETE_CONFIG_ALL",
        "UPDATE_PIPELINE_INSTANCE",
        "PIPELINE_COMMAND",
        "FULL_HEARTBEAT",
        "NOPE",
    ]
    valid_commands = [
        encode_message(
            stranger.command(node, rng.choice(actions), echo_pipeline(f"f{i}"), session=f"f{i}")
        )
        for i in range(300)
    ]
    misaddressed = [
        encode_message(
            stranger.command(node, "UPDATE_CONFIG", echo_pipeline(f"m{i}"), dest=other.address)
        )
        for i in range(50)
    ]
    valid_payloads = [
        encode_message(
            stranger.envelope.build(
                "PAYLOAD",
                {"NET_CONFIG_DATA": {"OP": "GET_CONFIG"}}
                if i % 2
                else {"DATA": _random_json(rng), "STREAM_NAME": "x"},
                path=[
                    stranger.address,
                    "admin_pipeline",
                    "NET_CONFIG_MONITOR" if i % 2 else "X",
                    None,
                ],
                dest=node.address,
                encrypt=True,
            )
        )
        for i in range(300)
    ]
    heartbeats = [
        stranger.envelope.encode(
            "HEARTBEAT",
            {"HEARTBEAT_VERSION": "v2", "ENCODED_DATA": encode_compressed({"SECURED": True})},
        )
        for _ in range(50)
    ]

    def junk(valid: list[bytes]) -> bytes:
        pick = rng.randrange(4)
        if pick == 0:
            return os.urandom(rng.randint(0, 1500))
        if pick == 1:
            data = rng.choice(valid)
            return data[: rng.randrange(len(data))]
        if pick == 2:
            return json.dumps(_random_json(rng)).encode()
        return _mutate(rng.choice(valid), rng)

    messages: list[tuple[str, bytes]] = []
    messages += [(config, m) for m in valid_commands + misaddressed]
    messages += [(inbox, m) for m in valid_payloads]
    n_ctrl = (total - len(messages)) // 3
    messages += [(ctrl, junk(heartbeats)) for _ in range(n_ctrl)]
    while len(messages) < total:
        if rng.random() < 0.5:
            messages.append((config, junk(valid_commands)))
        else:
            messages.append((inbox, junk(valid_payloads)))
    rng.shuffle(messages)
    return messages


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_flood_of_random_messages(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """10,000 messages a supervisor must refuse: none applied, all counted, node unharmed.

    Memory: the RSS of the whole process (node and clients) must stay within a generous bound,
    and, once warmed up (the first 3,000), the node may keep nothing of what it refused:
    tracemalloc counts what the last 7,000 left allocated.
    """
    total, warm_up = 10_000, 3_000
    # the observer starts after the flood, so that what it collects does not count
    observer = Client(mosquitto.port, alias="owner")
    with (
        running_node(mosquitto.url, tmp_path / "node", supervisor=True) as node,
        Client(mosquitto.port, alias="stranger", listen=False) as stranger,
    ):
        node.store.allow(observer.address)
        stranger.wait_listening(node)
        flood = _flood(node, stranger, total, seed=20260101)
        assert len(flood) == total
        before, snap = state(node), dict(node.refusals)
        received = node.received
        process = psutil.Process()

        def send(part: list[tuple[str, bytes]]) -> None:
            goal = sum(refusal_delta(node, snap).values()) + len(part)
            for topic, data in part:
                stranger.transport.publish(topic, data, qos=1, durable=False)
            done = wait_until(lambda: sum(refusal_delta(node, snap).values()) >= goal, 60, 0.05)
            assert done, f"not all refused: {refusal_delta(node, snap)}"

        gc.collect()
        rss_before = process.memory_info().rss
        started = time.monotonic()
        send(flood[:warm_up])
        tracemalloc.start()
        try:
            gc.collect()
            traced_before = tracemalloc.get_traced_memory()[0]
            send(flood[warm_up:])
            wait_processed(node, total, received, timeout=10)
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - traced_before
        finally:
            tracemalloc.stop()
        gc.collect()
        rss_after = process.memory_info().rss

        delta = refusal_delta(node, snap)
        assert sum(delta.values()) == total, delta  # each one counted once, by its reason
        assert "internal_error" not in delta, delta  # no handler tripped over any of them
        assert delta.get("unauthorized", 0) >= 300 and delta.get("not_for_me", 0) >= 50, delta
        # besides the flood, the node took only its own heartbeats (it is a supervisor);
        # the time is read together with the counter, so a slow machine cannot skew them
        elapsed = time.monotonic() - started
        own_heartbeats = node.received - received - total
        assert 0 <= own_heartbeats <= elapsed / node.settings.heartbeat_interval_s + 3
        assert state(node) == before
        assert not node.stop_requested.is_set()

        flood_kb = sum(len(d) for _, d in flood) / 1024
        per_message = retained / (total - warm_up)
        assert per_message < 300, (
            f"{retained / 1024:.0f} KB still allocated after {total - warm_up} refused messages "
            f"({per_message:.0f} B each; they average {flood_kb * 1024 / total:.0f} B)"
        )
        growth_mb = (rss_after - rss_before) / 2**20
        assert growth_mb < 64, (
            f"RSS grew {growth_mb:.1f} MB during a {flood_kb / 1024:.1f} MB flood"
        )

        # still up: heartbeats keep coming, with the counters, and a valid command works
        with observer:
            observer.wait_listening(node)
            heartbeat = observer.wait_heartbeat(node, timeout=5)
            assert heartbeat is not None
            assert sum(heartbeat["MESHOPS_REFUSED"].values()) >= sum(snap.values()) + total
            assert node.transport.connected
            assert_still_works(node, observer, "after-flood")
        print(  # shown with pytest -s
            f"flood: {total} msgs ({flood_kb / 1024:.1f} MB) refused in {elapsed:.1f} s; "
            f"RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB; "
            f"retained {retained / 1024:.0f} KB; {delta}"
        )


# ---- regressions for holes found while writing these tests --------------------------------------


def test_stream_tagged_command_is_not_exempt_from_replay_and_age(
    node: Node, client: Client
) -> None:
    """A command with a ``MESHOPS_STREAM`` field gets no exemption from replay and age checks.

    ``parse_message`` exempts reliable-stream messages from both, on the promise that their
    receiver refuses replays by sequence number; the node's config topic is no such receiver,
    so the node refuses stream-tagged messages there (else a signed one could be replayed
    for ever).
    """
    tag = {"MESHOPS_STREAM": {"ID": "cmds", "SEQ": 1}}
    received = node.received
    deploy = client.send(
        node, client.command(node, "UPDATE_CONFIG", echo_pipeline("streamed"), extra=tag)
    )
    wait_processed(node, 1, received)
    if "streamed" in node.pipelines.names():  # taken once (a node may also refuse the tag)
        mark = client.mark()
        client.send(node, client.command(node, "ARCHIVE_CONFIG", "streamed"))
        assert client.wait_notification(node, 4, "streamed", since=mark) is not None
    before, received = state(node), node.received
    assert before == ([], {})

    client.send(node, deploy)  # a replay
    old = restamp(
        client.command(node, "UPDATE_CONFIG", echo_pipeline("streamed-old"), extra=tag),
        client.key,
        dt.datetime.now(dt.UTC) - dt.timedelta(hours=6),
    )
    client.send(node, old)  # six hours old
    wait_processed(node, 2, received)
    assert state(node) == before, "a replayed or stale stream-tagged command was applied"
    assert_still_works(node, client, "after-streamed")


def test_sdk_command_cannot_be_replayed_after_the_window(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """An SDK command (``TIME`` only, no ``EE_TZ``) is not obeyed again after the window.

    Such commands are never refused on age (PROTOCOL.md), so the seen-set is their only guard:
    the node keeps their hashes for ``replay_memory_s`` (days), not for twice the window as it
    does for zoned messages. A 1 s window and a restart (the store prunes at its first check)
    show it in seconds.
    """
    home = tmp_path / "node"
    with Client(mosquitto.port) as client:
        with running_node(mosquitto.url, home, replay_window_s=1.0, future_skew_s=1.0) as node:
            node.store.allow(client.address)
            client.wait_listening(node)
            deploy = client.send(
                node, client.sdk_command(node, "UPDATE_CONFIG", echo_pipeline("p"))
            )
            assert wait_until(lambda: "p" in node.pipelines.names(), 5)
            client.send(node, client.sdk_command(node, "ARCHIVE_CONFIG", "p"))
            assert wait_until(lambda: "p" not in node.pipelines.names(), 5)
            snap, received = dict(node.refusals), node.received
            client.send(node, deploy)
            wait_processed(node, 1, received)
            assert refusal_delta(node, snap) == {"replayed": 1}  # within the window: refused
        time.sleep(2.5)
        with running_node(mosquitto.url, home, replay_window_s=1.0, future_skew_s=1.0) as node:
            client.wait_listening(node)
            received = node.received
            client.send(node, deploy)
            wait_processed(node, 1, received)
            time.sleep(0.3)
            assert "p" not in node.pipelines.names(), "a recorded SDK command was obeyed again"
            assert "p" not in node.store.pipelines()


def test_refusal_notifications_are_bounded(node: Node, client: Client, stranger: Client) -> None:
    """One message from a stranger makes the node send a bounded number of notifications.

    A refused ``UPDATE_CONFIG`` gets -100 per named instance so an SDK fails fast; a 2 MB
    command can name ~100,000 instances, each costing a signature and an outbox write, so
    the answers are deduplicated and capped. An SDK's real deploys name a handful.
    """
    instances = [{"INSTANCE_ID": f"i{i}"} for i in range(2000)]
    big = {
        "NAME": "amp",
        "TYPE": "Void",
        "PLUGINS": [{"SIGNATURE": "ECHO_01", "INSTANCES": instances}],
    }
    received, mark = node.received, client.mark()
    data = stranger.send(node, stranger.command(node, "UPDATE_CONFIG", big))
    wait_processed(node, 1, received, timeout=30)
    counted: list[int] = []

    def settled() -> bool:  # until the notifications stop coming
        counted.append(len(client.notifications(node, since=mark)))
        return len(counted) > 3 and counted[-1] == counted[-4]

    wait_until(settled, 30, 0.2)
    sent = counted[-1]
    assert state(node) == ([], {})
    assert sent <= 100, (
        f"one {len(data) // 1024} KB message from a stranger made the node send {sent} "
        "signed notifications"
    )


def test_network_map_stays_publishable_under_a_heartbeat_flood(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """50 heartbeats from made-up nodes cannot push NET_MON_01 over the 2 MB message limit.

    Anyone can sign heartbeats with throw-away keys, each with a 1,000-entry whitelist; past
    2 MB every MeshOps receiver would refuse the map (``too_large``) and the network would be
    hidden from SDKs and peers. The map bounds what it keeps and publishes.
    """
    with (
        running_node(
            mosquitto.url, tmp_path / "node", supervisor=True, netmon_interval_s=1.0
        ) as node,
        Client(mosquitto.port) as client,
    ):
        client.wait_listening(node)
        received = node.received
        for i in range(50):
            fake = Envelope(NodeKey.generate(), alias=f"fake{i}")
            whitelist = [
                "0xai_" + base64.urlsafe_b64encode(b"\x02" + os.urandom(32)).decode()
                for _ in range(1000)
            ]
            body = {
                "HEARTBEAT_VERSION": "v2",
                "ENCODED_DATA": encode_compressed({"EE_WHITELIST": whitelist}),
            }
            client.send(node, fake.encode("HEARTBEAT", body), topic=client.topics.ctrl)
        wait_processed(node, 50, received)
        mark = client.mark()
        too_large = client.unparsed["too_large"]
        netmon = client.wait_for(
            1,
            5,
            since=mark,
            topic=client.topics.payloads,
            sender=node.address,
            where=lambda m: m.path[2] == "NET_MON_01",
        )
        assert netmon, (
            f"no NET_MON_01 that a receiver accepts ({client.unparsed['too_large'] - too_large} "
            "refused as too large)"
        )
        assert node.alias in netmon[0].body["CURRENT_NETWORK"]
