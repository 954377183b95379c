"""Properties of the protocol layer, and a fuzz run over 10,000 malformed inputs.

The fuzz inputs come from ``random.Random(seed)`` (reproducible, and faster than hypothesis
for volume); hypothesis covers the structural properties.
"""

from __future__ import annotations

import json
import math
import random
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.errors import MessageRefused
from meshops.protocol import (
    ENVELOPE_FIELDS,
    MAX_MESSAGE_BYTES,
    NON_DATA_FIELDS,
    Envelope,
    NodeKey,
    canonical_json,
    encode_message,
    json_too_deep,
    parse_message,
    sign_message,
    verify_message,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = NodeKey.generate()
PEER = NodeKey.generate()
ENV = Envelope(KEY, "prop-node", zone="UTC")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
body_keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in ENVELOPE_FIELDS)
bodies = st.dictionaries(body_keys, json_values, max_size=8)


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} in canonical JSON")


def same_json(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (after a JSON round trip NaN is None anyway)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@SETTINGS
@given(st.dictionaries(st.text(max_size=10) | st.integers(-5, 5), json_values, max_size=8))
def test_canonicalisation_is_stable(obj: dict[Any, Any]) -> None:
    for version in ("v2", "v1"):
        text = canonical_json(obj, version)
        assert canonical_json(json.loads(text), version) == text
        json.loads(text, parse_constant=_no_constants)  # strict JSON: no NaN/Infinity


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab\n', max_size=8)
tricky_json = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=40,
)


@SETTINGS
@given(tricky_json, st.integers(0, 12))
def test_json_too_deep_matches_the_real_depth(value: Any, limit: int) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert json_too_deep(text, max_depth=limit) is (_depth(value) > limit)


@SETTINGS
@given(bodies)
def test_sign_verify_round_trip(body: dict[str, Any]) -> None:
    signed = sign_message(body, KEY)
    wire = json.loads(encode_message(signed))
    assert verify_message(wire) == KEY.address
    data = {k: v for k, v in wire.items() if k not in NON_DATA_FIELDS}
    assert same_json(data, _nonfinite_as_none(body))


def _nonfinite_as_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nonfinite_as_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nonfinite_as_none(v) for v in value]
    return value


@SETTINGS
@given(bodies, st.booleans())
def test_envelope_round_trip(body: dict[str, Any], encrypted: bool) -> None:
    data = ENV.encode("PAYLOAD", body, dest=PEER.address, encrypt=encrypted)
    msg = parse_message(data, own_key=PEER)
    assert msg.sender == KEY.address and msg.was_encrypted is encrypted
    assert same_json(msg.body, json.loads(json.dumps(_nonfinite_as_none(body))))


def _flip_is_refused_or_harmless(original: bytes, mutated: bytes) -> None:
    """A flipped byte must be refused, unless it changed no value at all (``1e5``/``1E5``).

    ``verify_eth``: the full check, so a flip inside ``EE_ETH_SIGN`` is caught too.
    """
    try:
        msg = parse_message(mutated, own_key=PEER, verify_eth=True)
    except MessageRefused:
        return
    assert json.loads(mutated) == json.loads(original), "a changed message was accepted"
    assert msg.raw == json.loads(original)


@settings(max_examples=300, deadline=None)
@given(bodies, st.data())
def test_flipping_any_byte_is_refused(body: dict[str, Any], data: st.DataObject) -> None:
    encoded = ENV.encode("PAYLOAD", body, dest=PEER.address)
    position = data.draw(st.integers(0, 10**6)) % len(encoded)  # lengths vary run to run
    xor = data.draw(st.integers(1, 255))
    mutated = bytearray(encoded)
    mutated[position] ^= xor
    _flip_is_refused_or_harmless(encoded, bytes(mutated))


def test_flipping_each_byte_of_one_message_is_refused() -> None:
    body = {"F": [0.1, 1e-07, 1.5e20], "T": "țara", "N": {"1": None, "B": True}}
    for encrypted in (False, True):
        encoded = ENV.encode("PAYLOAD", body, dest=[PEER.address], encrypt=encrypted)
        for position in range(len(encoded)):
            for xor in (0x01, 0x20, 0x80):
                mutated = bytearray(encoded)
                mutated[position] ^= xor
                _flip_is_refused_or_harmless(encoded, bytes(mutated))


# -- fuzz ---------------------------------------------------------------------------------------
def _valid_messages() -> list[bytes]:
    return [
        ENV.encode("PAYLOAD", {"A": 1, "F": 0.5, "S": "ș" * 5}),
        ENV.encode("HEARTBEAT", {"CPU": 1.5, "L": list(range(20))}, dest=PEER.address),
        ENV.encode("PAYLOAD", {"SECRET": "x" * 50}, dest=[PEER.address], encrypt=True),
    ]


_FIELD_TYPES: dict[str, type] = {
    "EE_PAYLOAD_PATH": list,
    "EE_MESSAGE_SEQ": int,
    "EE_EVENT_TYPE": str,
    "EE_MESSAGE_ID": str,
    "EE_IS_ENCRYPTED": bool,
    "EE_DEST": list,
    "EE_TIMESTAMP": list,  # any str must still parse as a time: none of the samples does
    "EE_TZ": str,
    "EE_ID": str,
    "EE_ENCRYPTED_DATA": list,  # any str must still decrypt: none of the samples does
}
_SAMPLES: list[Any] = [3.5, True, {"x": 1}, [1, 2, 3], "0xai_x", 12, ["a", "b"], ""]


def _wrong_types(rng: random.Random, template: dict[str, Any]) -> bytes:
    msg = {k: v for k, v in template.items() if k not in NON_DATA_FIELDS}
    field = rng.choice(sorted(_FIELD_TYPES))
    kind = _FIELD_TYPES[field]
    wrong = [v for v in _SAMPLES if not isinstance(v, kind) or (kind is int and v is True)]
    msg[field] = rng.choice(wrong)
    if field == "EE_ENCRYPTED_DATA":
        msg["EE_IS_ENCRYPTED"] = True
    if rng.random() < 0.5:  # a signed one, so the field check itself must refuse it
        return encode_message(sign_message(msg, KEY))
    return json.dumps(msg).encode()


def _bad_signature_field(rng: random.Random, template: dict[str, Any]) -> bytes:
    msg = dict(template)
    field = rng.choice(["EE_SIGN", "EE_ENCRYPTED_DATA", "EE_HASH", "EE_SENDER", "EE_ETH_SIGN"])
    msg[field] = rng.choice(
        ["!!!", "A" * rng.randint(0, 120), "=" * 4, "ș", "", rng.randbytes(40).hex(), 5]
    )
    if field == "EE_ENCRYPTED_DATA":
        msg["EE_IS_ENCRYPTED"] = True
        if rng.random() < 0.5:
            msg = sign_message({k: v for k, v in msg.items() if k not in NON_DATA_FIELDS}, KEY)
    return json.dumps(msg).encode()


def _malformed(rng: random.Random, valid: list[bytes], big: bytes) -> bytes | str:
    return _malformed_kind(rng, rng.randrange(11), valid, big)


def _malformed_kind(rng: random.Random, kind: int, valid: list[bytes], big: bytes) -> bytes | str:
    template = json.loads(rng.choice(valid))
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        chosen = rng.choice(valid)
        return chosen[: rng.randint(0, len(chosen) - 1)]
    if kind == 2:
        return _wrong_types(rng, template)
    if kind == 3:
        depth = rng.choice([50, 1000, 5000, 100_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        inner = opener * depth + "1" + closer * depth
        return ('{"EE_DEEP":' + inner + "}").encode() if rng.random() < 0.5 else inner.encode()
    if kind == 4:  # a NaN literal in place of a signed, non-null value
        hashed = [k for k, v in template.items() if k not in NON_DATA_FIELDS and v is not None]
        template[rng.choice(hashed)] = "@@NAN@@"
        return json.dumps(template).replace(
            '"@@NAN@@"', rng.choice(["NaN", "Infinity", "-Infinity"])
        )
    if kind == 5:
        chosen = bytearray(rng.choice(valid))
        chosen[rng.randrange(len(chosen))] = rng.choice([0xFF, 0xC3, 0x80, 0xED])
        return bytes(chosen)
    if kind == 6:
        return _bad_signature_field(rng, template)
    if kind == 7:
        return big + rng.randbytes(rng.randint(1, 64))  # oversized
    if kind == 8:
        return rng.choice([b"[]", b"null", b"1", b'"s"', b"{}", b'{"EE_SIGN":1}', b"\x00", b""])
    if kind == 9:  # duplicate keys smuggling another destination
        chosen = rng.choice(valid).decode()
        return chosen[:-1] + ',"EE_DEST":"' + KEY.address + '"}'
    template.pop(rng.choice(["EE_SIGN", "EE_HASH", "EE_SENDER"]))
    return json.dumps(template)


def test_fuzz_10000_malformed_inputs_are_all_refused_with_bounded_memory() -> None:
    rng = random.Random(20240601)
    valid = _valid_messages()
    big = b"{" + b" " * MAX_MESSAGE_BYTES
    reasons: dict[str, int] = {}
    tracemalloc.start()
    try:
        for _ in range(10_000):
            data = _malformed(rng, valid, big)  # made one at a time: some are 2 MB
            try:
                parse_message(data, own_key=PEER)
            except MessageRefused as exc:
                reasons[exc.reason.value] = reasons.get(exc.reason.value, 0) + 1
                continue
            pytest.fail(f"accepted a malformed input: {data[:200]!r}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert sum(reasons.values()) == 10_000
    for expected in ("bad_json", "too_large", "unsigned", "bad_field", "hash_mismatch"):
        assert reasons.get(expected), f"no {expected} in {reasons}"
