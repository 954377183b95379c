"""sign_message / verify_message / eth_signer_of, each refusal reason included."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from eth_account import Account
from eth_account.messages import encode_defunct

from meshops.errors import MessageRefused, RefusalReason
from meshops.protocol import (
    ETH_SIGN_PLACEHOLDER,
    NodeKey,
    eth_signer_of,
    message_hash,
    sign_message,
    verify_message,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def key() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture
def signed(key: NodeKey) -> dict[str, Any]:
    return sign_message({"ACTION": "STOP", "PAYLOAD": None, "X": [1.5, 0.1]}, key)


def wire(msg: dict[str, Any]) -> dict[str, Any]:
    """As a receiver sees it: through JSON."""
    return json.loads(json.dumps(msg))


def refusal(msg: Any) -> RefusalReason:
    with pytest.raises(MessageRefused) as info:
        verify_message(msg)
    return info.value.reason


def test_signed_message_has_every_field(signed: dict[str, Any], key: NodeKey) -> None:
    assert signed["SIGN_CANON_V"] == "v2"
    assert signed["EE_SENDER"] == key.address
    assert signed["EE_ETH_SENDER"] == key.eth_address
    assert signed["EE_HASH"] == message_hash(signed)
    text = '{"ACTION":"STOP","PAYLOAD":null,"SIGN_CANON_V":"v2","X":[1.5,0.1]}'
    assert signed["EE_HASH"] == hashlib.sha256(text.encode()).hexdigest()
    base64.urlsafe_b64decode(signed["EE_SIGN"])
    assert verify_message(wire(signed)) == key.address


def test_sign_returns_plain_data_and_does_not_touch_the_input(key: NodeKey) -> None:
    body = {1: float("nan"), "EE_SIGN": "stale", "T": (1, 2)}
    out = sign_message(body, key)
    assert body == {1: body[1], "EE_SIGN": "stale", "T": (1, 2)}
    assert out["1"] is None and out["T"] == [1, 2]
    assert out["EE_SIGN"] != "stale"
    assert verify_message(wire(out)) == key.address


def test_eth_signature_is_real_eip191_of_the_hash_text(
    signed: dict[str, Any], key: NodeKey
) -> None:
    recovered = Account.recover_message(
        encode_defunct(text=signed["EE_HASH"]), signature=signed["EE_ETH_SIGN"]
    )
    assert recovered == key.eth_address
    assert eth_signer_of(signed) == key.eth_address


def test_eth_sign_false_writes_the_sdk_placeholder(key: NodeKey) -> None:
    msg = sign_message({"A": 1}, key, eth_sign=False)
    assert msg["EE_ETH_SIGN"] == ETH_SIGN_PLACEHOLDER
    assert eth_signer_of(msg) is None
    assert verify_message(msg) == key.address
    del msg["EE_ETH_SIGN"], msg["EE_ETH_SENDER"]
    assert verify_message(msg) == key.address  # not needed at all
    assert eth_signer_of(msg) is None


def test_tampered_data_is_a_hash_mismatch(signed: dict[str, Any]) -> None:
    signed["X"] = [1.5, 0.2]
    assert refusal(signed) is RefusalReason.HASH_MISMATCH


def test_rehashed_tampering_is_a_bad_signature(signed: dict[str, Any]) -> None:
    signed["ACTION"] = "RESTART"
    signed["EE_HASH"] = message_hash(signed)
    assert refusal(signed) is RefusalReason.BAD_SIGNATURE


def test_another_senders_address_is_a_bad_signature(signed: dict[str, Any]) -> None:
    signed["EE_SENDER"] = NodeKey.generate().address
    assert refusal(signed) is RefusalReason.BAD_SIGNATURE


@pytest.mark.parametrize("field", ["EE_SIGN", "EE_SENDER", "EE_HASH"])
def test_missing_signature_field_is_unsigned(signed: dict[str, Any], field: str) -> None:
    del signed[field]
    assert refusal(signed) is RefusalReason.UNSIGNED


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("EE_SIGN", 12, RefusalReason.BAD_FIELD),
        ("EE_SENDER", ["x"], RefusalReason.BAD_FIELD),
        ("EE_SENDER", "0xai_nope", RefusalReason.BAD_FIELD),
        ("EE_HASH", 5, RefusalReason.BAD_FIELD),
        ("EE_HASH", "AB" * 32, RefusalReason.HASH_MISMATCH),
        ("SIGN_CANON_V", "v9", RefusalReason.BAD_FIELD),
        ("EE_SIGN", "!!!!not base64!!!!", RefusalReason.BAD_SIGNATURE),
        (
            "EE_SIGN",
            base64.urlsafe_b64encode(b"not DER at all").decode(),
            RefusalReason.BAD_SIGNATURE,
        ),
    ],
)
def test_malformed_fields(
    signed: dict[str, Any], field: str, value: Any, reason: RefusalReason
) -> None:
    signed[field] = value
    assert refusal(signed) is reason


def test_non_dict_is_refused() -> None:
    assert refusal([1, 2]) is RefusalReason.BAD_JSON


def test_high_s_signature_is_accepted(signed: dict[str, Any], key: NodeKey) -> None:
    r, s = decode_dss_signature(base64.urlsafe_b64decode(signed["EE_SIGN"]))
    assert s <= N // 2
    high = encode_dss_signature(r, N - s)
    signed["EE_SIGN"] = base64.urlsafe_b64encode(high).decode()
    assert verify_message(signed) == key.address


def test_non_canonical_base64_spelling_is_refused(signed: dict[str, Any]) -> None:
    der = base64.urlsafe_b64decode(signed["EE_SIGN"])
    while len(der) % 3 == 0:  # need unused low bits in the last character
        signed = sign_message({"again": len(der)}, NodeKey.generate())
        der = base64.urlsafe_b64decode(signed["EE_SIGN"])
    text = signed["EE_SIGN"].rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(text[-1])
    twin = text[:-1] + alphabet[last ^ 1] + "=" * (-len(text) % 4)
    assert base64.urlsafe_b64decode(twin) == der  # same bytes, other spelling
    signed["EE_SIGN"] = twin
    assert refusal(signed) is RefusalReason.BAD_SIGNATURE
    signed["EE_SIGN"] = text  # missing padding alone is tolerated
    assert verify_message(signed) == signed["EE_SENDER"]


def _sign_raw(data: dict[str, Any], key: NodeKey, version: str, include: bool) -> dict[str, Any]:
    digest = message_hash(data, version, include_canon_field=include)
    sig = key.sign_digest(bytes.fromhex(digest))
    return {
        **data,
        "EE_HASH": digest,
        "EE_SIGN": base64.urlsafe_b64encode(sig).decode(),
        "EE_SENDER": key.address,
    }


def test_unversioned_messages_verify_as_v2_then_v1(key: NodeKey) -> None:
    data = {"F": 1.0, "G": 0.5}
    old_v2 = _sign_raw(data, key, "v2", include=False)
    old_v1 = _sign_raw(data, key, "v1", include=False)
    assert old_v2["EE_HASH"] != old_v1["EE_HASH"]
    assert verify_message(old_v2) == key.address
    assert verify_message(old_v1) == key.address


def test_explicit_v1_is_verified_as_v1_only(key: NodeKey) -> None:
    msg = _sign_raw({"F": 1.0}, key, "v1", include=False)
    msg["SIGN_CANON_V"] = "v1"
    assert verify_message(msg) == key.address
    msg["SIGN_CANON_V"] = "v2"
    assert refusal(msg) is RefusalReason.HASH_MISMATCH


def test_legacy_sender_prefix_verifies_and_is_normalised(
    signed: dict[str, Any], key: NodeKey
) -> None:
    signed["EE_SENDER"] = "aixp_" + key.address[5:]
    assert verify_message(signed) == key.address


def test_lone_surrogate_cannot_be_canonicalised(key: NodeKey) -> None:
    msg = sign_message({"A": "ok"}, key)
    msg["A"] = "\ud800"
    assert refusal(msg) is RefusalReason.BAD_FIELD


def test_eth_sender_must_belong_to_ee_sender(signed: dict[str, Any]) -> None:
    signed["EE_ETH_SENDER"] = NodeKey.generate().eth_address
    with pytest.raises(MessageRefused) as info:
        eth_signer_of(signed)
    assert info.value.reason is RefusalReason.BAD_SIGNATURE


def test_eth_sender_case_must_be_exact(signed: dict[str, Any]) -> None:
    signed["EE_ETH_SENDER"] = signed["EE_ETH_SENDER"].lower()
    with pytest.raises(MessageRefused):
        eth_signer_of(signed)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0xbeef", RefusalReason.BAD_FIELD),
        ("0x" + "00" * 65, RefusalReason.BAD_SIGNATURE),
        (12, RefusalReason.BAD_FIELD),
        ("0x" + "zz" * 65, RefusalReason.BAD_FIELD),
    ],
)
def test_bad_eth_signatures(signed: dict[str, Any], value: Any, reason: RefusalReason) -> None:
    signed["EE_ETH_SIGN"] = value
    with pytest.raises(MessageRefused) as info:
        eth_signer_of(signed)
    assert info.value.reason is reason


def test_eth_signature_by_another_key_is_refused(signed: dict[str, Any]) -> None:
    other = NodeKey.generate()
    signed["EE_ETH_SIGN"] = "0x" + other.sign_personal(signed["EE_HASH"]).hex()
    with pytest.raises(MessageRefused) as info:
        eth_signer_of(signed)
    assert info.value.reason is RefusalReason.BAD_SIGNATURE


def test_eth_v_as_recovery_id_is_accepted(signed: dict[str, Any], key: NodeKey) -> None:
    raw = bytes.fromhex(signed["EE_ETH_SIGN"][2:])
    signed["EE_ETH_SIGN"] = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
    assert eth_signer_of(signed) == key.eth_address
