"""Envelope.build and parse_message: the fields, each refusal reason, replay and freshness."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest

from meshops.errors import MessageRefused, RefusalReason
from meshops.protocol import (
    ENVELOPE_FIELDS,
    MAX_MESSAGE_BYTES,
    Envelope,
    MemoryReplayGuard,
    Message,
    NodeKey,
    ReplayGuard,
    decrypt,
    encode_message,
    parse_message,
    sign_message,
    verify_message,
)

BODY = {"STREAM_NAME": "p1", "DATA": {"V": 1.5, "L": [1, 2]}, "TXT": "ț"}


@pytest.fixture(scope="module")
def node() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture(scope="module")
def peer() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture
def env(node: NodeKey) -> Envelope:
    return Envelope(node, "node-1", "1.2.3", zone="Europe/Bucharest")


def refused(data: Any, **kwargs: Any) -> RefusalReason:
    with pytest.raises(MessageRefused) as info:
        parse_message(data, **kwargs)
    return info.value.reason


def signed_bytes(fields: dict[str, Any], key: NodeKey) -> bytes:
    return encode_message(sign_message(fields, key))


# -- building ------------------------------------------------------------------------------------
def test_build_writes_the_whole_envelope(env: Envelope, node: NodeKey) -> None:
    msg = env.build("PAYLOAD", BODY, path=("node-1", "p1", "SIG", "i1"))
    for name in ("EE_TIMESTAMP", "EE_TIMEZONE", "EE_TZ", "EE_MESSAGE_SEQ", "EE_MESSAGE_ID",
                 "EE_TOTAL_MESSAGES", "EE_ADDR", "EE_ID", "EE_EVENT_TYPE", "EE_VERSION",
                 "EE_FORMATTER", "EE_PAYLOAD_PATH", "EE_IS_ENCRYPTED", "EE_SIGN", "EE_SENDER",
                 "EE_HASH", "SIGN_CANON_V", "EE_ETH_SIGN", "EE_ETH_SENDER"):  # fmt: skip
        assert name in msg, name
    assert msg["EE_TZ"] == "Europe/Bucharest"
    assert msg["EE_TIMEZONE"] in ("UTC+2", "UTC+3")
    dt.datetime.strptime(msg["EE_TIMESTAMP"], "%Y-%m-%d %H:%M:%S.%f")
    assert msg["EE_ADDR"] == msg["EE_SENDER"] == node.address
    assert msg["EE_ID"] == "node-1" and msg["EE_VERSION"] == "1.2.3"
    assert msg["EE_FORMATTER"] is None and msg["EE_IS_ENCRYPTED"] is False
    assert msg["EE_PAYLOAD_PATH"] == ["node-1", "p1", "SIG", "i1"]
    assert "EE_DEST" not in msg and "EE_ENCRYPTED_DATA" not in msg
    assert {k: msg[k] for k in BODY} == BODY
    assert verify_message(msg) == node.address


def test_default_path_and_local_zone(node: NodeKey) -> None:
    msg = Envelope(node, "n").build("HEARTBEAT", {})
    assert msg["EE_PAYLOAD_PATH"] == ["n", None, None, None]
    assert msg["EE_TIMEZONE"].startswith("UTC")
    parse_message(encode_message(msg))  # fresh by its own zone


def test_sequence_is_unique_across_threads(env: Envelope) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            seq = env.build("PAYLOAD", {})["EE_MESSAGE_SEQ"]
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 101))


@pytest.mark.parametrize("alias", ["", "x" * 21, " padded", "tab\t", 5])
def test_alias_is_validated(node: NodeKey, alias: Any) -> None:
    with pytest.raises(ValueError, match="alias"):
        Envelope(node, alias)


def test_alias_of_20_characters_is_fine(node: NodeKey) -> None:
    assert Envelope(node, "x" * 20).alias == "x" * 20


def test_build_refuses_programming_errors(env: Envelope, peer: NodeKey) -> None:
    with pytest.raises(ValueError, match="envelope fields"):
        env.build("PAYLOAD", {"EE_HASH": "x"})
    with pytest.raises(ValueError, match="signature, encryption or dest"):
        env.build("PAYLOAD", {}, extra={"EE_ENCRYPTED_DATA": "x"})
    with pytest.raises(ValueError, match="signature, encryption or dest"):
        env.build("PAYLOAD", {}, dest=peer.address, encrypt=True, extra={"EE_DEST": "x"})
    with pytest.raises(ValueError, match="needs dest"):
        env.build("PAYLOAD", {}, encrypt=True)
    with pytest.raises(ValueError, match="path"):
        env.build("PAYLOAD", {}, path=("a", "b"))
    with pytest.raises(ValueError, match="event_type"):
        env.build("", {})
    with pytest.raises(ValueError, match="zone"):
        Envelope(env.key, "n", zone="Mars/Olympus")


def test_encrypted_message_keeps_only_envelope_fields_in_clear(
    env: Envelope, peer: NodeKey
) -> None:
    msg = env.build("PAYLOAD", BODY, dest=peer.address, encrypt=True, extra={"SESSION_ID": "s"})
    assert msg["EE_IS_ENCRYPTED"] is True and msg["EE_DEST"] == peer.address
    assert set(msg) - ENVELOPE_FIELDS == {"SESSION_ID"}
    assert json.loads(decrypt(msg["EE_ENCRYPTED_DATA"], msg["EE_SENDER"], peer)) == BODY
    parsed = parse_message(encode_message(msg), own_key=peer)
    assert parsed.was_encrypted and parsed.body == {**BODY, "SESSION_ID": "s"}


def test_list_dest_uses_the_multi_form_for_every_recipient(env: Envelope, peer: NodeKey) -> None:
    third = NodeKey.generate()
    data = env.encode("PAYLOAD", BODY, dest=[peer.address, third.address], encrypt=True)
    for key in (peer, third):
        assert parse_message(data, own_key=key).body == BODY


# -- parsing -------------------------------------------------------------------------------------
def test_parse_returns_a_message(env: Envelope, node: NodeKey) -> None:
    data = env.encode(
        "PAYLOAD", BODY, path=("node-1", "p1", "SIG", "i1"), extra={"INITIATOR_ID": "sdk"}
    )
    msg = parse_message(data)
    assert isinstance(msg, Message)
    assert msg.sender == node.address and msg.sender_alias == "node-1"
    assert msg.event_type == "PAYLOAD" and msg.path == ("node-1", "p1", "SIG", "i1")
    assert msg.seq == msg.raw["EE_MESSAGE_SEQ"] and msg.message_id == msg.raw["EE_MESSAGE_ID"]
    assert msg.dest == () and msg.was_encrypted is False
    assert msg.body == {**BODY, "INITIATOR_ID": "sdk"}
    assert msg.hash == msg.raw["EE_HASH"]
    assert msg.timestamp is not None and msg.timestamp.tzinfo is not None
    assert parse_message(data.decode()).hash == msg.hash  # str input too


def test_sdk_style_command_uses_initiator_as_alias_and_is_not_judged_on_time(
    node: NodeKey, peer: NodeKey
) -> None:
    command = {
        "ACTION": "STOP",
        "PAYLOAD": None,
        "EE_ID": "target-node",
        "INITIATOR_ID": "my-sdk",
        "SESSION_ID": "my-sdk",
        "TIME": "2001-01-01 00:00:00.000000",  # ancient, in the sender's zone: not judged
        "EE_DEST": peer.address,
        "EE_IS_ENCRYPTED": False,
    }
    msg = parse_message(signed_bytes(command, node), own_key=peer)
    assert msg.sender_alias == "my-sdk" and msg.event_type is None
    assert msg.timestamp == dt.datetime(2001, 1, 1) and msg.timestamp.tzinfo is None
    assert msg.dest == (peer.address,)


def test_too_large_is_decided_before_parsing() -> None:
    junk = b"{" * (MAX_MESSAGE_BYTES + 1)
    assert refused(junk) is RefusalReason.TOO_LARGE
    assert refused("x" * (MAX_MESSAGE_BYTES + 1)) is RefusalReason.TOO_LARGE
    assert refused(memoryview(junk)) is RefusalReason.TOO_LARGE
    assert refused(b"{}" + b" " * 100, max_bytes=50) is RefusalReason.TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe{}",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"[" * 100_000,
        b'{"a":1,"a":2}',
        b"\xef\xbb\xbf{}",
        "\ud800",
    ],  # fmt: skip
)
def test_bad_json(data: Any) -> None:
    assert refused(data) is RefusalReason.BAD_JSON


def test_wrong_input_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_message(None)  # type: ignore[arg-type]


def test_unsigned_message(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {})
    del msg["EE_SIGN"]
    assert refused(encode_message(msg)) is RefusalReason.UNSIGNED
    assert refused(b"{}") is RefusalReason.UNSIGNED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("EE_PAYLOAD_PATH", ["a", "b"]),
        ("EE_PAYLOAD_PATH", ["a", 1, None, None]),
        ("EE_MESSAGE_SEQ", "1"),
        ("EE_MESSAGE_SEQ", True),
        ("EE_EVENT_TYPE", 7),
        ("EE_MESSAGE_ID", ["x"]),
        ("EE_IS_ENCRYPTED", "yes"),
        ("EE_DEST", 5),
        ("EE_DEST", ["0xai_not-an-address"]),
        ("EE_TIMESTAMP", "yesterday"),
        ("EE_TIMESTAMP", 1700000000),
        ("EE_TZ", "Not/AZone"),
        ("EE_ID", 3),
    ],
)
def test_bad_field_types(env: Envelope, field: str, value: Any) -> None:
    msg = env.build("PAYLOAD", {})
    msg[field] = value
    if field == "EE_TZ":
        msg["EE_TIMEZONE"] = "garbage"
    assert refused(signed_bytes(msg, env.key)) is RefusalReason.BAD_FIELD


def test_unknown_iana_zone_falls_back_to_the_offset_label(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {})
    msg["EE_TZ"] = "Not/AZone"
    parsed = parse_message(signed_bytes(msg, env.key))
    assert parsed.timestamp is not None and parsed.timestamp.utcoffset() is not None


def test_hash_mismatch_and_bad_signature(env: Envelope, peer: NodeKey) -> None:
    msg = env.build("PAYLOAD", {"V": 1})
    msg["V"] = 2
    assert refused(encode_message(msg)) is RefusalReason.HASH_MISMATCH
    forged = env.build("PAYLOAD", {"V": 1})
    forged["EE_SENDER"] = peer.address
    forged["EE_ETH_SENDER"] = peer.eth_address
    assert refused(encode_message(forged)) is RefusalReason.BAD_SIGNATURE


def test_tampered_eth_fields_are_refused(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {})
    msg["EE_ETH_SENDER"] = NodeKey.generate().eth_address
    assert refused(encode_message(msg)) is RefusalReason.BAD_SIGNATURE


def test_a_foreign_eth_signature_is_refused_when_it_matters(env: Envelope) -> None:
    """Receivers check EE_ETH_SIGN's form always and recover it on request (verify_eth)."""
    msg = env.build("PAYLOAD", {})
    other = NodeKey.generate().sign_personal(msg["EE_HASH"])
    msg["EE_ETH_SIGN"] = "0x" + other.hex()
    data = encode_message(msg)
    assert parse_message(data).sender == env.key.address
    assert refused(data, verify_eth=True) is RefusalReason.BAD_SIGNATURE
    msg["EE_ETH_SIGN"] = "0xnot-hex"
    assert refused(encode_message(msg)) is RefusalReason.BAD_FIELD
    genuine = env.build("PAYLOAD", {})
    assert parse_message(encode_message(genuine), verify_eth=True).sender == env.key.address


def test_not_for_me(env: Envelope, peer: NodeKey) -> None:
    other = NodeKey.generate()
    data = env.encode("PAYLOAD", {}, dest=other.address)
    assert refused(data, own_key=peer) is RefusalReason.NOT_FOR_ME
    assert parse_message(data).dest == (other.address,)  # no key: no opinion
    assert parse_message(data, own_key=other).dest == (other.address,)
    broadcast = env.encode("PAYLOAD", {})
    assert parse_message(broadcast, own_key=peer).dest == ()
    assert refused(broadcast, own_key=peer, require_dest_me=True) is RefusalReason.NOT_FOR_ME
    with pytest.raises(ValueError):
        parse_message(broadcast, require_dest_me=True)


def test_legacy_prefixed_dest_still_names_me(env: Envelope, peer: NodeKey) -> None:
    msg = env.build("PAYLOAD", {})
    msg["EE_DEST"] = ["aixp_" + peer.address[5:]]
    parsed = parse_message(signed_bytes(msg, env.key), own_key=peer)
    assert parsed.dest == (peer.address,)


def test_replayed(env: Envelope) -> None:
    guard = MemoryReplayGuard()
    assert isinstance(guard, ReplayGuard)
    data = env.encode("PAYLOAD", {})
    parse_message(data, replay_guard=guard)
    assert refused(data, replay_guard=guard) is RefusalReason.REPLAYED
    parse_message(env.encode("PAYLOAD", {}), replay_guard=guard)  # a new message is fine


def test_forged_copies_do_not_poison_the_replay_guard(env: Envelope) -> None:
    guard = MemoryReplayGuard()
    data = env.encode("PAYLOAD", {})
    forged = json.loads(data)
    forged["EE_SIGN"] = env.build("PAYLOAD", {})["EE_SIGN"]
    assert refused(json.dumps(forged), replay_guard=guard) is RefusalReason.BAD_SIGNATURE
    parse_message(data, replay_guard=guard)


def test_stale_and_future_messages(env: Envelope) -> None:
    data = env.encode("PAYLOAD", {})
    now = dt.datetime.now(dt.UTC)
    parse_message(data, now=now + dt.timedelta(seconds=100))
    assert refused(data, now=now + dt.timedelta(seconds=200)) is RefusalReason.STALE
    assert refused(data, now=now - dt.timedelta(seconds=60)) is RefusalReason.STALE
    assert refused(data, now=now + dt.timedelta(seconds=20), max_age_s=10) is RefusalReason.STALE
    parse_message(data, now=now - dt.timedelta(seconds=5))


def test_timestamp_without_tz_is_not_judged(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {})
    del msg["EE_TZ"]
    data = signed_bytes(msg, env.key)
    parse_message(data, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3))


def test_zone_is_honoured_when_judging(node: NodeKey) -> None:
    tokyo = Envelope(node, "n", zone="Asia/Tokyo").encode("PAYLOAD", {})
    la = Envelope(node, "n", zone="America/Los_Angeles").encode("PAYLOAD", {})
    parse_message(tokyo)
    parse_message(la)


def test_missing_encrypted_data(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {})
    msg["EE_IS_ENCRYPTED"] = True
    assert refused(signed_bytes(msg, env.key)) is RefusalReason.MISSING_FIELD


def test_undecryptable(env: Envelope, peer: NodeKey) -> None:
    data = env.encode("PAYLOAD", BODY, dest=peer.address, encrypt=True)
    assert refused(data) is RefusalReason.UNDECRYPTABLE  # no key
    msg = env.build("PAYLOAD", {}, dest=peer.address)
    msg["EE_IS_ENCRYPTED"] = True
    msg["EE_ENCRYPTED_DATA"] = "QUJDRA=="
    assert refused(signed_bytes(msg, env.key), own_key=peer) is RefusalReason.UNDECRYPTABLE
    outsider = NodeKey.generate()
    msg = env.build("PAYLOAD", BODY, dest=[outsider.address], encrypt=True)
    msg["EE_DEST"] = [outsider.address, peer.address]
    assert refused(signed_bytes(msg, env.key), own_key=peer) is RefusalReason.UNDECRYPTABLE


def test_encrypted_data_must_be_an_object(env: Envelope, peer: NodeKey) -> None:
    from meshops.protocol import encrypt

    msg = env.build("PAYLOAD", {}, dest=peer.address)
    msg["EE_IS_ENCRYPTED"] = True
    msg["EE_ENCRYPTED_DATA"] = encrypt("[1, 2]", peer.address, env.key)
    assert refused(signed_bytes(msg, env.key), own_key=peer) is RefusalReason.BAD_FIELD


def test_nan_literals_from_reference_nodes_read_as_null(env: Envelope) -> None:
    msg = env.build("PAYLOAD", {"L": [1.5, None]})
    text = encode_message(msg).decode().replace("[1.5,null]", "[1.5,NaN]")
    assert "NaN" in text
    assert parse_message(text).body["L"] == [1.5, None]


def test_clear_fields_win_over_decrypted_ones(env: Envelope, peer: NodeKey) -> None:
    data = env.encode(
        "PAYLOAD", {"K": "secret"}, dest=peer.address, encrypt=True, extra={"K": "clear"}
    )
    assert parse_message(data, own_key=peer).body == {"K": "clear"}


# -- replay guard ------------------------------------------------------------------------------
def test_memory_replay_guard_window_and_bound() -> None:
    guard = MemoryReplayGuard(window_s=10, max_entries=3)
    assert guard.check_and_remember("a", 100.0)
    assert not guard.check_and_remember("a", 105.0)
    assert guard.check_and_remember("a", 111.0)  # the window passed
    for h in "bcde":
        assert guard.check_and_remember(h, 112.0)
    assert len(guard) == 3
    assert guard.check_and_remember("b", 112.0)  # pushed out by the bound
    assert guard.check_and_remember("z", 200.0) and len(guard) == 1  # expiry empties it
    with pytest.raises(ValueError):
        MemoryReplayGuard(window_s=0)


def test_deep_nesting_is_refused_even_with_a_huge_recursion_limit() -> None:
    import sys

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # what importing eth_account (py_ecc) does
    try:
        for data in (
            b"[" * 100_000,
            b'{"a":' * 60_000,
            b'{"A":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        ):
            assert refused(data) is RefusalReason.BAD_JSON
    finally:
        sys.setrecursionlimit(previous)


def test_reasonable_nesting_is_fine_and_the_limit_is_enforced(env: Envelope) -> None:
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    parse_message(env.encode("PAYLOAD", {"N": nested(200)}))
    assert refused(env.encode("PAYLOAD", {"N": nested(300)})) is RefusalReason.BAD_JSON
