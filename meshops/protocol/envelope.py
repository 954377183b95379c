"""The message envelope: build signed (optionally encrypted) messages, parse incoming ones.

``Envelope`` writes messages the way a reference node does (PROTOCOL.md "Envelope").
``parse_message`` is the single gate every received message goes through; it answers a
``Message`` or raises ``MessageRefused`` with a ``RefusalReason`` (never another exception for
bad input), cheapest checks first so junk costs little:

size -> UTF-8/JSON (depth, duplicate keys) -> signature fields present -> ``EE_DEST``
(NOT_FOR_ME) -> field types -> time (STALE) -> hash and signature -> Ethereum fields
-> replay (REPLAYED) -> decryption.

The replay guard only remembers messages whose signature verified, so a forger cannot make a
node drop a genuine message by sending its hash first.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshops._version import __version__
from meshops.errors import CryptoError, KeyFormatError, MessageRefused, RefusalReason
from meshops.protocol.canonical import MAX_JSON_DEPTH, NON_DATA_FIELDS, json_too_deep, jsonable
from meshops.protocol.constants import MAX_MESSAGE_BYTES, STREAM_FIELD, TIMESTAMP_FORMAT
from meshops.protocol.crypto import decrypt, encrypt_multi
from meshops.protocol.crypto import encrypt as encrypt_single
from meshops.protocol.keys import ADDRESS_PREFIX, LEGACY_ADDRESS_PREFIX, NodeKey, parse_address
from meshops.protocol.replay import MemoryReplayGuard, ReplayGuard
from meshops.protocol.signing import (
    check_eth_fields,
    eth_signer_of,
    sign_message,
    verify_message,
)
from meshops.protocol.wiretime import (
    local_zone_name,
    offset_label,
    parse_time,
    zone_from_label,
    zone_named,
)

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_ALIAS_LEN",
    "Envelope",
    "MemoryReplayGuard",
    "Message",
    "ReplayGuard",
    "encode_message",
    "parse_message",
]

MAX_ALIAS_LEN = 20
ENVELOPE_FIELDS = NON_DATA_FIELDS | {
    "EE_TIMESTAMP",
    "EE_TIMEZONE",
    "EE_TZ",
    "EE_MESSAGE_SEQ",
    "EE_MESSAGE_ID",
    "EE_TOTAL_MESSAGES",
    "EE_ADDR",
    "EE_ID",
    "EE_EVENT_TYPE",
    "EE_VERSION",
    "EE_FORMATTER",
    "EE_PAYLOAD_PATH",
    "EE_IS_ENCRYPTED",
    "EE_ENCRYPTED_DATA",
    "EE_DEST",
    "SB_IMPLEMENTATION",
}
"""Fields the envelope owns; ``Message.body`` holds every other field."""

_NOT_IN_EXTRA = NON_DATA_FIELDS | {"EE_IS_ENCRYPTED", "EE_ENCRYPTED_DATA", "EE_DEST"}


# -- building -------------------------------------------------------------------------------------
def encode_message(msg: Mapping[str, Any]) -> bytes:
    """The UTF-8 JSON bytes of a signed message (compact, non-ASCII kept, strict JSON)."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias or len(alias) > MAX_ALIAS_LEN:
        raise ValueError(f"alias must be 1 to {MAX_ALIAS_LEN} characters, got {alias!r}")
    if not alias.isprintable() or alias != alias.strip():
        raise ValueError(f"alias must be printable without surrounding spaces, got {alias!r}")
    return alias


def _check_path(path: Sequence[object]) -> list[str | None]:
    items = list(path)
    if len(items) != 4 or not all(p is None or isinstance(p, str) for p in items):
        raise ValueError(f"path is [node_alias, pipeline, signature, instance], got {path!r}")
    return items  # type: ignore[return-value]


class Envelope:
    """Builds the signed messages of one sender (a node or an SDK session).

    Thread-safe: ``EE_MESSAGE_SEQ`` counts every message built, across threads.
    """

    def __init__(
        self,
        key: NodeKey,
        alias: str,
        version: str = __version__,
        *,
        zone: str | None = None,
        eth_sign: bool = True,
    ) -> None:
        """``zone``: an IANA zone for ``EE_TIMESTAMP``/``EE_TZ`` (default: this machine's)."""
        self.key = key
        self.alias = _check_alias(alias)
        self.version = version
        self.eth_sign = eth_sign
        if zone is not None and zone_named(zone) is None:
            raise ValueError(f"unknown time zone {zone!r}")
        self._zone = zone
        self._seq = 0
        self._lock = threading.Lock()

    def _now(self) -> tuple[dt.datetime, str | None]:
        if self._zone is not None:
            return dt.datetime.now(zone_named(self._zone)), self._zone
        return dt.datetime.now().astimezone(), local_zone_name()

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def build(
        self,
        event_type: str,
        body: Mapping[str, Any],
        *,
        path: Sequence[str | None] | None = None,
        dest: str | Sequence[str] | None = None,
        encrypt: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The whole signed message, ready for ``encode_message``.

        ``dest`` is one address (single-recipient encryption) or a list (multi-recipient
        form, as the reference uses for lists). With ``encrypt=True`` the body travels as JSON
        inside ``EE_ENCRYPTED_DATA`` and only envelope fields stay in clear. ``extra`` holds
        envelope-level fields that always stay in clear (``SESSION_ID``, ``INITIATOR_ID``,
        ``TIME``, an ``EE_ID`` naming a command's target...).
        """
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
        if not isinstance(body, Mapping):
            raise TypeError(f"body must be a dict, not {type(body).__name__}")
        clash = sorted(str(k) for k in body if k in ENVELOPE_FIELDS)
        if clash:
            raise ValueError(f"body must not set envelope fields {clash}; use extra=")
        extra = dict(extra or {})
        reserved = sorted(k for k in extra if k in _NOT_IN_EXTRA)
        if reserved:
            raise ValueError(f"extra must not set signature, encryption or dest fields {reserved}")
        dest_value: str | list[str] | None
        if dest is None:
            dest_value = None
        elif isinstance(dest, str):
            dest_value = parse_address(dest)
        else:
            dest_value = list(dict.fromkeys(parse_address(d) for d in dest))
            if not dest_value:
                raise ValueError("dest list is empty")
        if encrypt and dest_value is None:
            raise ValueError("encrypt=True needs dest: who can decrypt it?")
        now, zone_name = self._now()
        seq = self._next_seq()
        msg: dict[str, Any] = {
            "EE_TIMESTAMP": now.strftime(TIMESTAMP_FORMAT),
            "EE_TIMEZONE": offset_label(now.utcoffset()),
            "EE_TZ": zone_name,
            "EE_MESSAGE_SEQ": seq,
            "EE_MESSAGE_ID": str(uuid.uuid4()),
            "EE_TOTAL_MESSAGES": seq,
            "EE_ADDR": self.key.address,
            "EE_ID": self.alias,
            "EE_EVENT_TYPE": str(event_type),
            "EE_VERSION": self.version,
            "EE_FORMATTER": None,
            "EE_PAYLOAD_PATH": _check_path(path or (self.alias, None, None, None)),
        }
        if dest_value is not None:
            msg["EE_DEST"] = dest_value
        if encrypt:
            plaintext = json.dumps(jsonable(body), ensure_ascii=False, separators=(",", ":"))
            if isinstance(dest_value, list):
                cipher = encrypt_multi(plaintext, dest_value, self.key)
            else:
                cipher = encrypt_single(plaintext, dest_value, self.key)  # type: ignore[arg-type]
            msg["EE_IS_ENCRYPTED"] = True
            msg["EE_ENCRYPTED_DATA"] = cipher
        else:
            msg["EE_IS_ENCRYPTED"] = False
            msg.update(body)
        msg.update(extra)
        return sign_message(msg, self.key, eth_sign=self.eth_sign)

    def encode(self, event_type: str, body: Mapping[str, Any], **kwargs: Any) -> bytes:
        """``build`` then ``encode_message``: the bytes to publish."""
        return encode_message(self.build(event_type, body, **kwargs))


# -- parsing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """A verified incoming message.

    ``body`` holds every non-envelope field (``ENVELOPE_FIELDS`` excluded), the decrypted ones
    merged in; a field in clear wins over a decrypted one of the same name, as in the SDK.
    ``SESSION_ID``, ``INITIATOR_*``, ``MODIFIED_BY_*`` and ``TIME`` are in ``body``. ``raw`` is
    the message as received. ``sender`` is the only identity to trust: ``EE_ADDR``, ``EE_ID``
    and the path are claims the sender signed. ``sender_alias`` is ``EE_ID`` for node messages
    (those with ``EE_EVENT_TYPE``) and ``INITIATOR_ID`` for SDK commands, whose ``EE_ID``
    names their target. ``timestamp`` is aware when the message carries its zone.
    """

    sender: str
    sender_alias: str | None
    event_type: str | None
    path: tuple[str | None, str | None, str | None, str | None]
    timestamp: dt.datetime | None
    message_id: str | None
    seq: int | None
    dest: tuple[str, ...]
    body: dict[str, Any] = field(hash=False)
    raw: dict[str, Any] = field(hash=False, repr=False)
    hash: str
    was_encrypted: bool


def _refuse(reason: RefusalReason, detail: str) -> MessageRefused:
    return MessageRefused(reason, detail)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in JSON object")  # parsers disagree on which one wins
    return obj


def _nan_to_none(_constant: str) -> None:
    """NaN/Infinity literals: reference nodes write them for NaN inside lists (their hash
    has them as null), so they are read as null rather than refused."""
    return None


def _loads(text: str, what: str) -> Any:
    if json_too_deep(text):
        raise _refuse(RefusalReason.BAD_JSON, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_nan_to_none)
    except RecursionError as exc:
        raise _refuse(RefusalReason.BAD_JSON, f"{what} is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, duplicate keys, an integer too long
        raise _refuse(RefusalReason.BAD_JSON, f"{what} is not valid JSON: {exc}") from exc


def _load(data: bytes | bytearray | memoryview | str, max_bytes: int) -> dict[str, Any]:
    if isinstance(data, str):
        if len(data) > max_bytes:
            raise _refuse(RefusalReason.TOO_LARGE, f"over {max_bytes} bytes")
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _refuse(RefusalReason.BAD_JSON, "text is not valid Unicode") from exc
    elif isinstance(data, memoryview):
        if data.nbytes > max_bytes:
            raise _refuse(RefusalReason.TOO_LARGE, f"{data.nbytes} bytes, over {max_bytes}")
        data = data.tobytes()
    elif not isinstance(data, bytes | bytearray):
        raise TypeError(f"parse_message takes bytes or str, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise _refuse(RefusalReason.TOO_LARGE, f"{len(data)} bytes, over {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(RefusalReason.BAD_JSON, f"not UTF-8: {exc.reason}") from exc
    obj = _loads(text, "message")
    if not isinstance(obj, dict):
        raise _refuse(
            RefusalReason.BAD_JSON, f"a message is a JSON object, not {type(obj).__name__}"
        )
    return obj


def _dest_strings(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("EE_DEST")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(d, str) for d in items):
        raise _refuse(RefusalReason.BAD_FIELD, "EE_DEST must be an address or a list of them")
    return tuple(items)


def _addressed_to(dest: tuple[str, ...], address: str) -> bool:
    """String test, no curve maths: runs before the signature check, on any junk."""
    body = address[len(ADDRESS_PREFIX) :]
    return any(
        d[len(ADDRESS_PREFIX) :] == body
        and d[: len(ADDRESS_PREFIX)] in (ADDRESS_PREFIX, LEGACY_ADDRESS_PREFIX)
        for d in dest
    )


def _optional(view: Mapping[str, Any], name: str, kind: type) -> Any:
    """The field's value or None; a value of another type (bool is not an int here) refuses."""
    value = view.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _refuse(
            RefusalReason.BAD_FIELD, f"{name} must be {kind.__name__}, not {type(value).__name__}"
        )
    return value


def _timestamp(raw: Mapping[str, Any]) -> tuple[dt.datetime | None, bool]:
    """(timestamp, whether freshness applies: EE_TIMESTAMP with EE_TZ)."""
    stamp = _optional(raw, "EE_TIMESTAMP", str)
    if stamp is None:
        sdk_time = raw.get("TIME")  # SDK commands: sender's local time, no zone: informative
        return (parse_time(sdk_time) if isinstance(sdk_time, str) else None), False
    parsed = parse_time(stamp)
    if parsed is None:
        raise _refuse(RefusalReason.BAD_FIELD, f"EE_TIMESTAMP is not a time: {stamp[:40]!r}")
    zone_name = _optional(raw, "EE_TZ", str)
    label = _optional(raw, "EE_TIMEZONE", str)
    zone: dt.tzinfo | None = zone_named(zone_name) if zone_name else None
    if zone is None and label is not None:
        zone = zone_from_label(label)
    if zone is None:
        if zone_name is not None:
            raise _refuse(RefusalReason.BAD_FIELD, f"cannot resolve time zone {zone_name[:40]!r}")
        return parsed, False
    return parsed.replace(tzinfo=zone), zone_name is not None


def _check_fresh(stamp: dt.datetime, now: dt.datetime, max_age_s: float, skew_s: float) -> None:
    age = (now - stamp).total_seconds()
    if age > max_age_s:
        raise _refuse(RefusalReason.STALE, f"sent {age:.1f} s ago, over {max_age_s} s")
    if -age > skew_s:
        raise _refuse(RefusalReason.STALE, f"sent {-age:.1f} s in the future")


def _decrypted_fields(
    raw: Mapping[str, Any], sender: str, own_key: NodeKey | None
) -> dict[str, Any]:
    if own_key is None:
        raise _refuse(RefusalReason.UNDECRYPTABLE, "encrypted, and no key to decrypt with")
    try:
        text = decrypt(raw["EE_ENCRYPTED_DATA"], sender, own_key)
    except CryptoError as exc:
        raise _refuse(RefusalReason.UNDECRYPTABLE, str(exc)) from exc
    inner = _loads(text, "EE_ENCRYPTED_DATA")
    if not isinstance(inner, dict):
        raise _refuse(RefusalReason.BAD_FIELD, "EE_ENCRYPTED_DATA does not hold a JSON object")
    return inner


def _path(view: Mapping[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    value = view.get("EE_PAYLOAD_PATH")
    if value is None:
        return (None, None, None, None)
    if not isinstance(value, list) or len(value) != 4:
        raise _refuse(RefusalReason.BAD_FIELD, "EE_PAYLOAD_PATH must be a list of 4")
    if not all(p is None or isinstance(p, str) for p in value):
        raise _refuse(RefusalReason.BAD_FIELD, "EE_PAYLOAD_PATH items must be strings or null")
    return (value[0], value[1], value[2], value[3])


def _describe(view: Mapping[str, Any]) -> dict[str, Any]:
    """The typed ``Message`` fields read from a message (BAD_FIELD when mistyped)."""
    event_type = _optional(view, "EE_EVENT_TYPE", str)
    alias_field = "EE_ID" if event_type is not None else "INITIATOR_ID"
    return {
        "sender_alias": _optional(view, alias_field, str),
        "event_type": event_type,
        "path": _path(view),
        "message_id": _optional(view, "EE_MESSAGE_ID", str),
        "seq": _optional(view, "EE_MESSAGE_SEQ", int),
    }


def parse_message(
    data: bytes | bytearray | memoryview | str,
    *,
    own_key: NodeKey | None = None,
    replay_guard: ReplayGuard | None = None,
    now: dt.datetime | None = None,
    max_age_s: float = 120.0,
    future_skew_s: float = 10.0,
    max_bytes: int = MAX_MESSAGE_BYTES,
    require_dest_me: bool = False,
    verify_eth: bool = False,
) -> Message:
    """Check and open one received message.

    ``own_key``: the receiver; needed to decrypt, and to refuse messages whose ``EE_DEST``
    names others (NOT_FOR_ME; with ``require_dest_me`` also those naming nobody).
    ``replay_guard``: refuse hashes seen before (REPLAYED). ``now``: the time to judge
    freshness by (default: the clock; a naive value is local time, as Python takes it).
    Freshness applies to messages with ``EE_TIMESTAMP`` and ``EE_TZ`` only. A message in a
    reliable stream (a signed ``MESHOPS_STREAM`` field in clear) is exempt from freshness and
    the replay guard: it may wait in an outbox longer than any window, is resent with the same
    hash after a loss, and its receiver refuses replays by sequence number instead.
    ``verify_eth``: also recover ``EE_ETH_SIGN`` and require it to be the sender's (costs an
    ecrecover; by default only ``EE_ETH_SENDER`` and the signature's form are checked).
    Raises MessageRefused for any bad input; errors of the replay guard itself propagate.
    """
    if require_dest_me and own_key is None:
        raise ValueError("require_dest_me needs own_key")
    raw = _load(data, max_bytes)
    for name in ("EE_SENDER", "EE_SIGN", "EE_HASH"):
        if raw.get(name) is None:
            raise _refuse(RefusalReason.UNSIGNED, f"{name} is missing")
    dest = _dest_strings(raw)
    if (
        own_key is not None
        and (dest or require_dest_me)
        and not _addressed_to(dest, own_key.address)
    ):
        raise _refuse(RefusalReason.NOT_FOR_ME, "EE_DEST does not name this receiver")
    encrypted = _optional(raw, "EE_IS_ENCRYPTED", bool) is True
    if encrypted and "EE_ENCRYPTED_DATA" not in raw:
        raise _refuse(RefusalReason.MISSING_FIELD, "EE_IS_ENCRYPTED without EE_ENCRYPTED_DATA")
    if encrypted:
        _optional(raw, "EE_ENCRYPTED_DATA", str)
    described = _describe(raw)
    now_utc = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp, judge_freshness = _timestamp(raw)
    streamed = STREAM_FIELD in raw
    if judge_freshness and stamp is not None and not streamed:
        _check_fresh(stamp, now_utc, max_age_s, future_skew_s)
    sender = verify_message(raw)
    if verify_eth:
        eth_signer_of(raw)  # a present Ethereum signature must recover to the sender
    else:
        check_eth_fields(raw, sender)
    try:
        dest_addresses = tuple(parse_address(d) for d in dest)
    except KeyFormatError as exc:
        raise _refuse(RefusalReason.BAD_FIELD, f"EE_DEST: {exc}") from exc
    if (
        replay_guard is not None
        and not streamed
        and not replay_guard.check_and_remember(raw["EE_HASH"], now_utc.timestamp())
    ):
        raise _refuse(RefusalReason.REPLAYED, f"hash {raw['EE_HASH'][:16]}... seen before")
    view: Mapping[str, Any] = raw
    if encrypted:
        inner = _decrypted_fields(raw, sender, own_key)
        view = {**inner, **{k: v for k, v in raw.items() if k != "EE_ENCRYPTED_DATA"}}
        described = _describe(view)
    return Message(
        sender=sender,
        timestamp=stamp,
        dest=dest_addresses,
        body={k: v for k, v in view.items() if k not in ENVELOPE_FIELDS},
        raw=raw,
        hash=raw["EE_HASH"],
        was_encrypted=encrypted,
        **described,
    )
