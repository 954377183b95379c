"""Interoperability with the reference SDK's block engine (``ratio1``), fully offline.

Both directions for each feature: what MeshOps signs or encrypts, ratio1 verifies or decrypts,
and the other way round, with the data shapes that break naive implementations (non-ASCII,
floats, NaN, integer keys, nested lists, high-S signatures).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from meshops.protocol import (
    Envelope,
    NodeKey,
    decrypt,
    encode_message,
    encrypt,
    encrypt_multi,
    eth_signer_of,
    parse_message,
    sign_message,
    verify_message,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

BODIES: list[dict[Any, Any]] = [
    {"TEXT": 'Ratio1 ☃ țară 日本 \u2028 "quoted" \\ back'},
    {"F": [0.1, 1e-07, 1.0, 1e300, 123456789.123, -0.0, 5e-324, 2.5e-10, 1.5e20]},
    {"NESTED": [[1, [2, [3, [4.25, {"K": [None, True, False]}]]]], []]},
    {1: "int key", 20: {3: "nested int key"}, "S": "x"},
    {"NAN": float("nan"), "LIST_NAN": [1.5, float("nan"), float("inf")]},
    {"BIG": 12345678901234567890123, "NEG": -7, "EMPTY": {}, "E": ""},
]


@pytest.fixture(scope="module")
def new_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Make reference engines (a multiton, so each has a unique name) in a temporary folder."""
    base = tmp_path_factory.mktemp("ratio1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(base / "home"))
        mp.chdir(base)
        from ratio1 import Logger
        from ratio1.bc import DefaultBlockEngine

        log = Logger("MESHOPS_TEST", base_folder=str(base), app_folder="r1", silent=True)
        data_folder = Path(log.get_target_folder("data"))

        def make(key: NodeKey | None = None) -> Any:
            name = f"meshops-{uuid.uuid4().hex}"
            pem_name = f"{name}.pem"
            if key is not None:
                key.save(data_folder / pem_name)
            config = {"PEM_FILE": pem_name, "PEM_LOCATION": "data"}
            return DefaultBlockEngine(name=name, log=log, config=config)

        yield make


@pytest.fixture(scope="module")
def engine(new_engine: Callable[..., Any]) -> Any:
    return new_engine()


@pytest.fixture(scope="module")
def ours() -> NodeKey:
    return NodeKey.generate()


def on_the_wire(msg: dict[str, Any]) -> dict[str, Any]:
    """What the other side parses: plain json (the reference writes NaN as NaN)."""
    return json.loads(json.dumps(msg))


def test_keys_and_addresses_are_interchangeable(
    new_engine: Callable[..., Any], ours: NodeKey
) -> None:
    reference = new_engine(ours)  # ratio1 loads the PEM file MeshOps saved
    assert reference.address == ours.address
    assert reference.eth_address == ours.eth_address
    theirs = new_engine()
    pem = theirs._sk_to_text(theirs.private_key)  # ratio1 writes, MeshOps reads
    key = NodeKey.from_pem(pem)
    assert key.address == theirs.address and key.eth_address == theirs.eth_address


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_meshops_signed_verifies_in_ratio1(
    engine: Any, ours: NodeKey, body: dict[Any, Any]
) -> None:
    wire = json.loads(encode_message(sign_message(body, ours)))
    result = engine.verify(wire)
    assert result.valid, result.message
    assert result.sender == ours.address


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_ratio1_signed_verifies_in_meshops(engine: Any, body: dict[Any, Any]) -> None:
    msg = copy.deepcopy(body)
    engine.sign(msg)
    text = json.dumps(msg)  # the reference serialises with plain json: NaN in lists stays NaN
    assert verify_message(json.loads(text)) == engine.address
    parsed = parse_message(text.encode())
    assert parsed.sender == engine.address


def test_high_s_signatures_from_openssl_verify(engine: Any) -> None:
    highs = 0
    for i in range(64):
        msg = {"I": i, "F": 0.1}
        engine.sign(msg)
        _, s = decode_dss_signature(base64.urlsafe_b64decode(msg["EE_SIGN"]))
        if s > N // 2:
            highs += 1
            assert verify_message(on_the_wire(msg)) == engine.address
        if highs >= 3:
            break
    assert highs >= 3, "OpenSSL never produced a high-S signature in 64 tries"


def _reference_signed(engine: Any, data: dict[str, Any], **hash_kwargs: Any) -> dict[str, Any]:
    """Sign with the reference's own hashing primitives, as older SDKs did."""
    msg = copy.deepcopy(data)
    _, digest, hexdigest = engine.compute_hash(copy.deepcopy(msg), return_all=True, **hash_kwargs)
    msg.update(
        EE_HASH=hexdigest,
        EE_SIGN=engine._sign(digest, engine.private_key, text=True),
        EE_SENDER=engine.address,
    )
    assert engine.verify(copy.deepcopy(msg)).valid  # the reference accepts its own
    return msg


def test_legacy_and_unversioned_messages_from_ratio1(engine: Any) -> None:
    from ratio1.bc.base import _LegacyComplexJsonEncoder

    data = {"F": 1.0, "G": 1.5e20, "H": [0.5, 100.0], "T": "ș"}
    unversioned_v2 = _reference_signed(engine, data)
    unversioned_v1 = _reference_signed(engine, data, encoder_cls=_LegacyComplexJsonEncoder)
    labelled_v1 = _reference_signed(
        engine, {**data, "SIGN_CANON_V": "v1"}, encoder_cls=_LegacyComplexJsonEncoder
    )
    assert len({m["EE_HASH"] for m in (unversioned_v2, unversioned_v1, labelled_v1)}) == 2
    for msg in (unversioned_v2, unversioned_v1, labelled_v1):
        assert verify_message(on_the_wire(msg)) == engine.address


def test_ethereum_signatures_both_ways(engine: Any, ours: NodeKey) -> None:
    msg = sign_message({"A": 1}, ours)
    signer = engine.eth_verify_text_signature(
        text=msg["EE_HASH"], signature=msg["EE_ETH_SIGN"], no_hash=True
    )
    assert signer == ours.eth_address
    theirs = {"A": 1}
    engine.sign(theirs, eth_sign=True)  # the reference signs keccak of the canonical text
    assert eth_signer_of(on_the_wire(theirs)) == engine.eth_address
    placeholder = {"A": 1}
    engine.sign(placeholder)  # the SDK's default: "0xBEEF"
    assert placeholder["EE_ETH_SIGN"] == "0xBEEF"
    assert eth_signer_of(placeholder) is None


def test_single_recipient_encryption_both_ways(engine: Any, ours: NodeKey) -> None:
    text = '{"ACTION": "STOP", "T": "ș"}'
    assert engine.decrypt(encrypt(text, engine.address, ours), ours.address) == text
    assert decrypt(engine.encrypt(text, ours.address), engine.address, ours) == text


def test_multi_recipient_encryption_both_ways(
    engine: Any, new_engine: Callable[..., Any], ours: NodeKey
) -> None:
    other = new_engine()
    text = json.dumps({"PIPELINES": ["p"] * 50})
    ciphertext = encrypt_multi(text, [engine.address, other.address, ours.address], ours)
    assert engine.decrypt(ciphertext, ours.address) == text
    assert other.decrypt(ciphertext, ours.address) == text
    theirs = engine.encrypt(text, [other.address, ours.address])
    assert decrypt(theirs, engine.address, ours) == text


def test_encrypted_envelope_opens_in_ratio1(engine: Any, ours: NodeKey) -> None:
    body = {"NET_CONFIG_DATA": {"OP": "SET_CONFIG", "PIPELINES": [{"NAME": "p", "X": 0.5}]}}
    for dest in (engine.address, [engine.address]):
        msg = Envelope(ours, "meshops-node").build("PAYLOAD", body, dest=dest, encrypt=True)
        wire = json.loads(encode_message(msg))
        assert engine.verify(copy.deepcopy(wire)).valid
        plain = engine.decrypt(wire["EE_ENCRYPTED_DATA"], wire["EE_SENDER"])
        assert json.loads(plain) == body


def test_sdk_style_encrypted_command_parses(engine: Any, ours: NodeKey) -> None:
    """Shaped like the SDK's commands: body encrypted, routing in clear, TIME without zone."""
    critical = {"ACTION": "UPDATE_CONFIG", "PAYLOAD": {"NAME": "p1", "TYPE": "Void"}}
    msg = {
        "EE_IS_ENCRYPTED": True,
        "EE_ENCRYPTED_DATA": engine.encrypt(json.dumps(critical), ours.address),
        "EE_DEST": ours.address,
        "EE_ID": "meshops-node",
        "SESSION_ID": "sdk-session",
        "INITIATOR_ID": "sdk-session",
        "EE_SENDER": engine.address,
        "TIME": "2020-01-01 10:00:00.000000",
    }
    engine.sign(msg)
    parsed = parse_message(json.dumps(msg), own_key=ours)
    assert parsed.sender == engine.address and parsed.was_encrypted
    assert parsed.sender_alias == "sdk-session"
    assert parsed.body["ACTION"] == "UPDATE_CONFIG" and parsed.body["PAYLOAD"]["TYPE"] == "Void"
