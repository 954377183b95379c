"""Canonical JSON: the exact text whose SHA-256 is a message's ``EE_HASH``.

Signatures only interoperate if both sides produce byte-identical text, so this follows the
reference (``ratio1/bc/base.py``) step by step rather than any JSON canonicalisation standard:

1. NaN and +-Infinity become ``null``; numpy scalars and arrays become plain numbers and lists;
   datetimes become ``"%Y-%m-%d %H:%M:%S"``.
2. ``json.dumps`` compact, non-ASCII kept, insertion order (so mixed int/str keys don't break
   sorting), then ``json.loads`` back: integer keys become strings.
3. ``json.dumps`` again, compact, keys sorted.

Canon ``v2`` writes floats as Python ``repr``. The legacy canon ``v1`` writes them as
``repr(x).rstrip('0').rstrip('.')`` when the repr has a dot, in both dumps (so ``1.0`` is
``1`` and, a quirk kept for compatibility, ``1.5e+20`` is ``1.5e+2``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

__all__ = [
    "CANON_FIELD",
    "CANON_VERSIONS",
    "MAX_JSON_DEPTH",
    "NON_DATA_FIELDS",
    "canonical_json",
    "json_too_deep",
    "jsonable",
    "message_hash",
]

CANON_FIELD = "SIGN_CANON_V"
CANON_VERSIONS = ("v1", "v2")
NON_DATA_FIELDS = frozenset(
    {"EE_SIGN", "EE_SENDER", "EE_HASH", CANON_FIELD, "EE_ETH_SIGN", "EE_ETH_SENDER"}
)
"""Fields that are not hashed: the signature itself, and ``SIGN_CANON_V`` (re-added for v2)."""

MAX_JSON_DEPTH = 256
"""Deepest nesting accepted from the wire; real messages nest about ten levels."""

_SEP = (",", ":")
_STRING = re.compile(rb'"[^"]*"')
_NOT_SHAPE = bytes(b for b in range(256) if b not in b'[]{}"')
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def json_too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsing ``text`` could nest deeper than ``max_depth`` (check before json.loads).

    Needed because the C JSON parser recurses on the C stack and is only stopped by the
    interpreter's recursion limit, which some libraries raise (``py_ecc``, imported with
    ``eth_account``, sets 100000): then ``[[[[...`` from the wire crashes the process. Linear
    time with C-speed steps: escaped backslashes and quotes, then strings, are cut out before
    brackets are counted, which matches JSON's reading of every prefix the parser accepts.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    raw = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    # Keep brackets and quotes; two adjacent quotes (an empty string, or the end of one
    # string and the start of the next) hide nothing, so drop them before the regex.
    shape = raw.translate(None, _NOT_SHAPE).replace(b'""', b"")
    brackets = _STRING.sub(b"", shape).translate(None, b'"') if b'"' in shape else shape
    depth, chunk = 0, max_depth + 1
    for start in range(0, len(brackets), chunk):  # in chunks: an attack stops at the first
        steps = list(accumulate(map(_DEPTH_STEP.__getitem__, brackets[start : start + chunk])))
        if depth + max(steps) > max_depth:
            return True
        depth += steps[-1]
    return False


def _default(obj: Any) -> Any:
    """Serialise the non-JSON types the reference accepts (numpy, datetime)."""
    module = type(obj).__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, _dt.datetime):
        return obj.strftime(_DATETIME_FORMAT)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any, active: set[int] | None = None) -> Any:
    """A copy of ``obj`` with non-finite floats as None and numpy/datetime values converted.

    Only used when the fast C encoder refused the data (NaN somewhere), so speed matters less
    than clear failures: a reference cycle raises ValueError instead of recursing forever.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if active is None:
        active = set()
    if isinstance(obj, Mapping | list | tuple):
        marker = id(obj)
        if marker in active:
            raise ValueError("circular reference in message data")
        active.add(marker)
        try:
            if isinstance(obj, Mapping):
                return {_finite_key(k): _finite(v, active) for k, v in obj.items()}
            return [_finite(v, active) for v in obj]
        finally:
            active.discard(marker)
    converted = _default(obj)
    return _finite(converted, active)


def _finite_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return None  # the reference writes such a key as "null"
    return key


def _dump_v2(obj: Any, *, sort_keys: bool) -> str:
    kwargs: dict[str, Any] = {
        "separators": _SEP,
        "ensure_ascii": False,
        "allow_nan": False,
        "default": _default,
        "sort_keys": sort_keys,
    }
    try:
        return json.dumps(obj, **kwargs)
    except ValueError:
        # NaN/Inf (or a cycle): clean a copy and retry; a second failure is the caller's.
        return json.dumps(_finite(obj), **kwargs)


def _v1_float(value: float) -> str:
    if not math.isfinite(value):
        return "null"
    text = float.__repr__(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


class _V1Encoder(json.JSONEncoder):
    """Stdlib JSON with the legacy float text; only reachable through the pure-Python encoder."""

    def iterencode(self, o: Any, _one_shot: bool = False) -> Any:
        make: Callable[..., Any] = json.encoder._make_iterencode  # type: ignore[attr-defined]
        encode_str = json.encoder.encode_basestring
        return make(
            {},
            self.default,
            encode_str,
            None,
            _v1_float,
            self.key_separator,
            self.item_separator,
            self.sort_keys,
            self.skipkeys,
            _one_shot,
        )(o, 0)


def _dump_v1(obj: Any, *, sort_keys: bool) -> str:
    encoder = _V1Encoder(separators=_SEP, ensure_ascii=False, sort_keys=sort_keys, default=_default)
    return encoder.encode(_finite(obj))


def _canonical_pair(obj: Any, version: str = "v2") -> tuple[Any, str]:
    """``(data, text)``: the data a receiver will parse back, and its canonical text."""
    if version == "v2":
        data = json.loads(_dump_v2(obj, sort_keys=False))
        return data, json.dumps(data, separators=_SEP, ensure_ascii=False, sort_keys=True)
    if version == "v1":
        data = json.loads(_dump_v1(obj, sort_keys=False))
        return data, _dump_v1(data, sort_keys=True)
    raise ValueError(f"unknown canon version {version!r}, expected one of {CANON_VERSIONS}")


def canonical_json(obj: Any, version: str = "v2") -> str:
    """The canonical text of ``obj`` under canon ``version`` ("v2" or legacy "v1")."""
    return _canonical_pair(obj, version)[1]


def jsonable(obj: Any) -> Any:
    """``obj`` as the plain JSON data a receiver parses back (NaN -> None, int keys -> str)."""
    return json.loads(_dump_v2(obj, sort_keys=False))


def message_hash(
    msg: Mapping[Any, Any], version: str = "v2", *, include_canon_field: bool = True
) -> str:
    """Hex SHA-256 of a message's data fields, the value of ``EE_HASH``.

    Drops ``NON_DATA_FIELDS``; for v2 with ``include_canon_field`` puts ``SIGN_CANON_V: "v2"``
    back, as the reference signs it (an older SDK, unaware of the field, hashed it like any
    other). ``include_canon_field=False`` gives the hash of unversioned v2 messages; v1 never
    hashes the field.
    """
    data = {k: v for k, v in msg.items() if k not in NON_DATA_FIELDS}
    if version == "v2" and include_canon_field:
        data[CANON_FIELD] = "v2"
    return hashlib.sha256(canonical_json(data, version).encode("utf-8")).hexdigest()
