"""Canonical JSON: exact texts, because hashes only match when texts are byte-identical."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest

from meshops.protocol import canonical_json, jsonable, message_hash


def test_v2_is_sorted_compact_non_ascii_with_repr_floats() -> None:
    data = {
        "b": 1.0,
        "a": [0.1, 1e-07, 1.5e20, 2.5e-10],
        "c": "țară 日本",
        "d": {"z": True, "y": None},
    }
    assert canonical_json(data) == (
        '{"a":[0.1,1e-07,1.5e+20,2.5e-10],"b":1.0,"c":"țară 日本","d":{"y":null,"z":true}}'
    )


def test_non_finite_floats_become_null_everywhere() -> None:
    nan, inf = float("nan"), float("inf")
    data = {"x": nan, "l": [1.0, nan, -inf], "n": {"deep": [{"i": inf}]}}
    assert canonical_json(data) == '{"l":[1.0,null,null],"n":{"deep":[{"i":null}]},"x":null}'


def test_integer_keys_become_strings_and_sort_as_strings() -> None:
    assert canonical_json({10: "a", 9: "b", "x": 1}) == '{"10":"a","9":"b","x":1}'
    # a str key and an int key with the same text collapse, the later one wins (as in the SDK)
    assert canonical_json({1: "int", "1": "str"}) == '{"1":"str"}'


def test_numpy_values_are_plain_numbers_and_lists() -> None:
    data = {
        "f32": np.float32(1.5),
        "f64": np.float64(0.1),
        "i": np.int64(7),
        "arr": np.array([1.5, np.nan]),
        "nan": np.float64("nan"),
        "b": np.bool_(True),
    }
    assert canonical_json(data) == (
        '{"arr":[1.5,null],"b":true,"f32":1.5,"f64":0.1,"i":7,"nan":null}'
    )


def test_datetimes_are_written_like_the_reference() -> None:
    stamp = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert canonical_json({"t": stamp}) == '{"t":"2024-05-06 07:08:09"}'


def test_v1_strips_trailing_zeros_and_keeps_the_exponent_quirk() -> None:
    data = {"a": 1.0, "b": 100.0, "c": 0.5, "d": 1e-07, "e": 1.5e20, "f": float("nan")}
    # 1.5e+20 -> "1.5e+2" -> 150.0 on reload -> "150": the reference's legacy behaviour
    assert canonical_json(data, "v1") == '{"a":1,"b":100,"c":0.5,"d":1e-07,"e":150,"f":null}'


def test_unknown_version_and_unserialisable_values_raise() -> None:
    with pytest.raises(ValueError, match="canon version"):
        canonical_json({}, "v3")
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        canonical_json(cyclic)


def test_jsonable_is_what_a_receiver_parses_back() -> None:
    assert jsonable({1: float("nan"), "t": (1, 2), "n": np.int64(3)}) == {
        "1": None,
        "t": [1, 2],
        "n": 3,
    }


def test_message_hash_ignores_signature_fields_and_adds_canon_for_v2() -> None:
    body = {"A": 1, "B": "x"}
    signed = {
        **body,
        "EE_SIGN": "s",
        "EE_SENDER": "x",
        "EE_HASH": "h",
        "SIGN_CANON_V": "v1",
        "EE_ETH_SIGN": "0xBEEF",
        "EE_ETH_SENDER": "0x0",
    }
    v2_text = '{"A":1,"B":"x","SIGN_CANON_V":"v2"}'
    assert message_hash(signed) == hashlib.sha256(v2_text.encode()).hexdigest()
    assert (
        message_hash(signed, include_canon_field=False)
        == hashlib.sha256(b'{"A":1,"B":"x"}').hexdigest()
    )
    assert message_hash(signed, "v1") == hashlib.sha256(b'{"A":1,"B":"x"}').hexdigest()
    assert message_hash(body) == message_hash(signed)


def test_hash_is_over_utf8_bytes() -> None:
    text = canonical_json({"k": "ș"})
    assert (
        message_hash({"k": "ș"}, include_canon_field=False)
        == hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
    assert json.loads(text) == {"k": "ș"}


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 11 + "]" * 11, True),
        ("[" * 10 + "]" * 10, False),
        ('["' + "[" * 50 + '"]', False),  # brackets inside a string do not nest
        ('["\\"' + "[" * 50 + '"]', False),  # nor after an escaped quote
        ('["\\\\"' + ",[" * 11, True),  # an escaped backslash ends the string
        ("[1]," * 100, False),  # many brackets, shallow
        ('{"a":' * 11 + "1" + "}" * 11, True),
    ],
)
def test_json_too_deep(text: str, deep: bool) -> None:
    from meshops.protocol import json_too_deep

    assert json_too_deep(text, max_depth=10) is deep


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@pytest.mark.parametrize(
    "text",
    ['["[",""]', '["[","]"]', '["]]]]","[[[["]', '[{"[":"{"},"\\\\",["\\"[["]]', '["",""]'],
)
def test_json_too_deep_is_not_fooled_by_quotes(text: str) -> None:
    from meshops.protocol import json_too_deep

    depth = _depth(json.loads(text))
    for limit in range(5):
        assert json_too_deep(text, max_depth=limit) is (depth > limit)
