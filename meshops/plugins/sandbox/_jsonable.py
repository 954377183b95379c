"""Plain JSON data from whatever custom code returns, on both sides of the pipe.

Results cross the process boundary as JSON (never pickle, which would let the worker run
code in the node). Values JSON cannot hold become something close: numpy scalars and arrays
become numbers and lists, sets, tuples and deques lists, dates ISO text, non-finite floats null (as
in the protocol's canonical JSON), and anything else its ``repr`` (cut to a length). Depth
and item counts are capped, so a self-referencing or huge structure cannot stall the pipe.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "dumps_capped", "to_jsonable"]

MAX_DEPTH = 32
MAX_ITEMS = 100_000
MAX_REPR = 1000


class _Budget:
    def __init__(self, items: int) -> None:
        self.items = items

    def take(self) -> None:
        self.items -= 1
        if self.items < 0:
            raise ValueError(f"more than {MAX_ITEMS} values")


def to_jsonable(obj: Any, *, max_items: int = MAX_ITEMS) -> Any:
    """``obj`` as plain JSON data; ValueError when it holds more than ``max_items`` values."""
    return _convert(obj, 0, _Budget(max_items))


def _convert(obj: Any, depth: int, budget: _Budget) -> Any:
    budget.take()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if depth >= MAX_DEPTH:
        return _short_repr(obj)
    if isinstance(obj, Mapping):
        return {_key(k): _convert(v, depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset | deque):
        return [_convert(v, depth + 1, budget) for v in obj]
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, bytes | bytearray):
        return bytes(obj).decode("utf-8", "replace")
    tolist = _numpy_tolist(obj)
    if tolist is not None:
        size = getattr(obj, "size", 1)
        if isinstance(size, int) and size > budget.items:
            raise ValueError(f"more than {MAX_ITEMS} values")
        return _convert(tolist(), depth + 1, budget)
    return _short_repr(obj)


def _numpy_tolist(obj: Any) -> Any:
    """``obj.tolist`` for numpy arrays and scalars, without importing numpy here."""
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist
    return None


def _key(key: Any) -> str | int | float | bool | None:
    if key is None or isinstance(key, str | int | float | bool):
        return key
    return _short_repr(key)


def _short_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ of user code must not break the reply
        text = f"<unrepresentable {type(obj).__name__}: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


def dumps_capped(obj: Any, max_bytes: int) -> bytes:
    """One JSON line (ASCII, newline-terminated); ValueError when longer than ``max_bytes``."""
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    raw = data.encode("ascii") + b"\n"
    if len(raw) > max_bytes:
        raise ValueError(f"{len(raw)} bytes > {max_bytes} byte cap")
    return raw
