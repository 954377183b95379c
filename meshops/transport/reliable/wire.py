"""What reliable streams put on the wire: the stream header, the ack, the injected codecs.

Pure functions over dicts; encoding, signing and verifying are injected by the caller
(``meshops.protocol`` in a node, plain JSON in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshops.protocol.constants import ACK_FIELD, STREAM_FIELD

__all__ = [
    "ACK_KEY",
    "STREAM_KEY",
    "AckDecoder",
    "AckEncoder",
    "Decoder",
    "DeliverFn",
    "ack_body",
    "parse_ack",
    "parse_stream_header",
    "stream_header",
]

STREAM_KEY = STREAM_FIELD
ACK_KEY = ACK_FIELD

Decoder = Callable[[bytes], tuple[str, dict[str, Any]]]
"""``decode(payload) -> (sender address, body)``; raises on a bad or unverifiable message."""
AckDecoder = Decoder
AckEncoder = Callable[[str, dict[str, Any]], bytes]
"""``encode_ack(dest, ack) -> payload``: sign (and maybe encrypt) an ack for ``dest``."""
DeliverFn = Callable[[str, str, dict[str, Any]], None]
"""``deliver(topic, sender, body)``: hand one in-order message to the application."""

_MAX_ID_LEN = 64


def stream_header(stream_id: str, seq: int) -> dict[str, Any]:
    """The body fields that put a message in a reliable stream."""
    return {STREAM_KEY: {"ID": stream_id, "SEQ": seq}}


def ack_body(stream_id: str, seq: int) -> dict[str, Any]:
    """The body of a cumulative ack: everything up to ``seq`` was delivered."""
    return {ACK_KEY: {"ID": stream_id, "SEQ": seq}}


def _parse_pair(value: object, key: str, min_seq: int) -> tuple[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    sid, seq = value.get("ID"), value.get("SEQ")
    if not isinstance(sid, str) or not 0 < len(sid) <= _MAX_ID_LEN:
        raise ValueError(f"{key}.ID must be a non-empty string of at most {_MAX_ID_LEN} chars")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < min_seq:
        raise ValueError(f"{key}.SEQ must be an integer >= {min_seq}")
    return sid, seq


def parse_stream_header(body: dict[str, Any]) -> tuple[str, int] | None:
    """``(stream id, seq)`` of a stream message, ``None`` for a plain one; ValueError if bad."""
    if STREAM_KEY not in body:
        return None
    return _parse_pair(body[STREAM_KEY], STREAM_KEY, 1)


def parse_ack(ack: dict[str, Any]) -> tuple[str, int]:
    """``(stream id, acked seq)`` of an ack body; ValueError if it is not one."""
    if ACK_KEY not in ack:
        raise ValueError(f"not an ack: no {ACK_KEY}")
    return _parse_pair(ack[ACK_KEY], ACK_KEY, 0)
