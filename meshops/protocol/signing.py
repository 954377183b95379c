"""Sign and verify messages (canon v2), byte-compatible with the reference SDK and node.

A signed message carries ``EE_HASH`` (hex SHA-256 of the canonical data), ``EE_SIGN``
(urlsafe base64 DER ECDSA over that digest), ``EE_SENDER`` and ``SIGN_CANON_V``. MeshOps also
fills ``EE_ETH_SIGN`` with a real EIP-191 signature of the ``EE_HASH`` text, so Ethereum tools can
check the sender too; the SDK only puts a placeholder there.

``EE_ETH_SENDER`` and ``EE_ETH_SIGN`` are outside the hash: whoever relays a message can change
them. Trust an Ethereum identity only through ``eth_signer_of`` (or ``eth_address_of(sender)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import coincurve
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from eth_utils import keccak

from meshops.errors import KeyFormatError, MessageRefused, RefusalReason
from meshops.protocol.canonical import (
    CANON_FIELD,
    NON_DATA_FIELDS,
    _canonical_pair,
    canonical_json,
    message_hash,
)
from meshops.protocol.keys import (
    NodeKey,
    _public_key,
    eth_address_of,
    parse_address,
    personal_digest,
)

__all__ = [
    "ETH_SIGN_PLACEHOLDER",
    "check_eth_fields",
    "eth_signer_of",
    "sign_message",
    "verify_message",
]

ETH_SIGN_PLACEHOLDER = "0xBEEF"
"""What the SDK puts in ``EE_ETH_SIGN``: not a signature."""

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ETH_SIG = re.compile(r"0x[0-9a-f]{130}")
"""Lowercase, as eth_account and the reference write it: one spelling per signature."""
_B64URL = re.compile(r"[A-Za-z0-9_-]{8,100}={0,2}")
"""A DER secp256k1 signature is 8 to 72 bytes: at most 96 base64 characters."""


def sign_message(msg: Mapping[Any, Any], key: NodeKey, *, eth_sign: bool = True) -> dict[str, Any]:
    """Return a signed copy of ``msg``: what goes on the wire.

    The copy holds the data as a receiver will parse it back (NaN -> None, numpy -> plain,
    integer keys -> strings), so the dict you hold is exactly what was hashed. Old signature
    fields in ``msg`` are replaced. ``eth_sign=False`` writes the SDK's placeholder instead of
    an EIP-191 signature (cheaper; Ethereum tools then cannot check the sender).
    """
    if not isinstance(msg, Mapping):
        raise TypeError(f"a message is a dict, not {type(msg).__name__}")
    data = {k: v for k, v in msg.items() if k not in NON_DATA_FIELDS}
    data[CANON_FIELD] = "v2"
    plain, text = _canonical_pair(data, "v2")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    hex_digest = digest.hex()
    signed: dict[str, Any] = dict(plain)
    signed["EE_HASH"] = hex_digest
    signed["EE_SIGN"] = base64.urlsafe_b64encode(key.sign_digest(digest)).decode("ascii")
    signed["EE_SENDER"] = key.address
    signed["EE_ETH_SENDER"] = key.eth_address
    if eth_sign:
        signed["EE_ETH_SIGN"] = "0x" + key.sign_personal(hex_digest).hex()
    else:
        signed["EE_ETH_SIGN"] = ETH_SIGN_PLACEHOLDER
    return signed


def _signature_der(text: str) -> bytes:
    """Decode ``EE_SIGN`` strictly and bring S to the low half.

    Strict (canonical base64url, DER) so that no two spellings of one signature exist. Low S
    because OpenSSL, which the reference signs with, may produce high S, and libsecp256k1
    only accepts low S.
    """
    if not _B64URL.fullmatch(text):
        raise MessageRefused(RefusalReason.BAD_SIGNATURE, "EE_SIGN is not base64url")
    padded = text + "=" * (-len(text) % 4)
    try:
        der = base64.urlsafe_b64decode(padded)
        r, s = decode_dss_signature(der)
    except (binascii.Error, ValueError) as exc:
        raise MessageRefused(
            RefusalReason.BAD_SIGNATURE, f"EE_SIGN is not a DER signature: {exc}"
        ) from exc
    if base64.urlsafe_b64encode(der).decode("ascii") != padded:
        raise MessageRefused(RefusalReason.BAD_SIGNATURE, "EE_SIGN is not canonical base64url")
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise MessageRefused(RefusalReason.BAD_SIGNATURE, "EE_SIGN has r or s out of range")
    if s > _HALF_N:
        s = _SECP256K1_N - s
    return encode_dss_signature(r, s)


def _candidates(canon: object) -> tuple[tuple[str, bool], ...]:
    """Canon(s) to try, as (version, hash SIGN_CANON_V?), in the reference's order."""
    if canon is None:  # unversioned: an older signer; current canon without the field, then v1
        return (("v2", False), ("v1", False))
    if canon == "v2":
        return (("v2", True),)
    if canon == "v1":
        return (("v1", False),)
    raise MessageRefused(RefusalReason.BAD_FIELD, f"unknown {CANON_FIELD} {str(canon)[:20]!r}")


def _hash_as(msg: Mapping[str, Any], version: str, include: bool) -> str:
    try:
        return message_hash(msg, version, include_canon_field=include)
    except RecursionError as exc:
        raise MessageRefused(RefusalReason.BAD_JSON, "message nested too deeply") from exc
    except (TypeError, ValueError) as exc:  # unserialisable value, lone surrogate, ...
        raise MessageRefused(
            RefusalReason.BAD_FIELD, f"cannot canonicalise message: {exc}"
        ) from exc


def verify_message(msg: Mapping[str, Any]) -> str:
    """Check a message's hash and signature; return the sender's ``0xai_`` address.

    Raises MessageRefused: UNSIGNED (``EE_SENDER``, ``EE_SIGN`` or ``EE_HASH`` missing),
    BAD_FIELD (one of them has the wrong type, the sender is not an address, the data cannot be
    canonicalised), HASH_MISMATCH (the data do not hash to ``EE_HASH``), BAD_SIGNATURE.
    ``EE_ETH_SIGN`` is not needed (see ``eth_signer_of``).
    """
    if not isinstance(msg, Mapping):
        raise MessageRefused(
            RefusalReason.BAD_JSON, f"a message is an object, not {type(msg).__name__}"
        )
    for name in ("EE_SENDER", "EE_SIGN", "EE_HASH"):
        if msg.get(name) is None:
            raise MessageRefused(RefusalReason.UNSIGNED, f"{name} is missing")
        if not isinstance(msg[name], str):
            raise MessageRefused(RefusalReason.BAD_FIELD, f"{name} must be a string")
    try:
        sender = parse_address(msg["EE_SENDER"])
    except KeyFormatError as exc:
        raise MessageRefused(RefusalReason.BAD_FIELD, f"EE_SENDER: {exc}") from exc
    claimed = msg["EE_HASH"]
    if not _HEX64.fullmatch(claimed):
        raise MessageRefused(RefusalReason.HASH_MISMATCH, "EE_HASH is not a lowercase hex SHA-256")
    candidates = _candidates(msg.get(CANON_FIELD))
    signature = _signature_der(msg["EE_SIGN"])
    for version, include in candidates:
        if _hash_as(msg, version, include) != claimed:
            continue
        try:
            valid = _public_key(sender).verify(signature, bytes.fromhex(claimed))
        except ValueError as exc:
            raise MessageRefused(RefusalReason.BAD_SIGNATURE, f"EE_SIGN: {exc}") from exc
        if valid:
            return sender
        raise MessageRefused(RefusalReason.BAD_SIGNATURE, f"EE_SIGN does not verify for {sender}")
    raise MessageRefused(RefusalReason.HASH_MISMATCH, "message data do not hash to EE_HASH")


def _recover(signature: bytes, digest: bytes) -> coincurve.PublicKey | None:
    """The key that produced a 65-byte r||s||v signature over ``digest``, if any."""
    v = signature[64]
    recid = v - 27 if v >= 27 else v
    if recid not in (0, 1):
        return None
    try:
        return coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([recid]), digest, hasher=None
        )
    except ValueError:
        return None


def _reference_eth_digest(msg: Mapping[str, Any]) -> bytes | None:
    """What the reference's ``sign(eth_sign=True)`` personal-signs: keccak of the canonical text."""
    canon = msg.get(CANON_FIELD)
    if canon not in ("v1", "v2"):
        return None
    data = {k: v for k, v in msg.items() if k not in NON_DATA_FIELDS}
    if canon == "v2":
        data[CANON_FIELD] = "v2"
    try:
        text = canonical_json(data, canon)
    except (TypeError, ValueError, RecursionError):
        return None  # cannot be the reference form then; the caller refuses the signature
    return personal_digest(keccak(text.encode("utf-8")))


def check_eth_fields(msg: Mapping[str, Any], sender: str) -> None:
    """Cheap consistency of the Ethereum fields with a verified ``sender`` (no curve maths).

    ``EE_ETH_SENDER``, when given, must be the sender's EIP-55 account and ``EE_ETH_SIGN``
    must be null, the SDK's placeholder or 65 bytes of lowercase hex. Whether that signature
    recovers to the sender costs an ecrecover (about a third of a parse), so it is checked
    only by ``eth_signer_of``, by whoever relies on it (an oracle, a contract, a tool).
    """
    eth_sender = msg.get("EE_ETH_SENDER")
    if eth_sender is not None and eth_sender != eth_address_of(sender):
        raise MessageRefused(
            RefusalReason.BAD_SIGNATURE, "EE_ETH_SENDER is not EE_SENDER's account"
        )
    value = msg.get("EE_ETH_SIGN")
    if value is None or value == ETH_SIGN_PLACEHOLDER:
        return
    if not isinstance(value, str) or not _ETH_SIG.fullmatch(value):
        raise MessageRefused(
            RefusalReason.BAD_FIELD, "EE_ETH_SIGN is not 0x + lowercase hex of 65 bytes"
        )


def eth_signer_of(msg: Mapping[str, Any]) -> str | None:
    """The Ethereum address that EIP-191-signed this message, or None when it carries no such
    signature (``EE_ETH_SIGN`` absent, null, or exactly the SDK's ``"0xBEEF"``).

    A present signature must be well formed and recover, over the ``EE_HASH`` text (MeshOps)
    or over keccak of the canonical text (the reference's ``eth_sign=True``), to the key of
    ``EE_SENDER``; ``EE_ETH_SENDER``, when given, must be that key's EIP-55 address exactly.
    Otherwise MessageRefused: BAD_FIELD for malformed values, BAD_SIGNATURE for a mismatch.
    The hash itself is not re-checked: call ``verify_message`` first.
    """
    for name in ("EE_SENDER", "EE_HASH"):
        if not isinstance(msg.get(name), str):
            raise MessageRefused(RefusalReason.UNSIGNED, f"{name} is missing")
    try:
        sender = parse_address(msg["EE_SENDER"])
    except KeyFormatError as exc:
        raise MessageRefused(RefusalReason.BAD_FIELD, f"EE_SENDER: {exc}") from exc
    expected = eth_address_of(sender)
    eth_sender = msg.get("EE_ETH_SENDER")
    if eth_sender is not None and eth_sender != expected:
        raise MessageRefused(
            RefusalReason.BAD_SIGNATURE, "EE_ETH_SENDER is not EE_SENDER's account"
        )
    value = msg.get("EE_ETH_SIGN")
    if value is None or value == ETH_SIGN_PLACEHOLDER:
        return None
    if not isinstance(value, str) or not _ETH_SIG.fullmatch(value):
        raise MessageRefused(
            RefusalReason.BAD_FIELD, "EE_ETH_SIGN is not 0x + lowercase hex of 65 bytes"
        )
    signature = bytes.fromhex(value[2:])
    sender_key = _public_key(sender).format(compressed=True)
    text_digest = personal_digest(msg["EE_HASH"].encode("utf-8", "surrogatepass"))
    recovered = _recover(signature, text_digest)
    if recovered is not None and recovered.format(compressed=True) == sender_key:
        return expected
    reference_digest = _reference_eth_digest(msg)
    if reference_digest is not None:
        recovered = _recover(signature, reference_digest)
        if recovered is not None and recovered.format(compressed=True) == sender_key:
            return expected
    raise MessageRefused(RefusalReason.BAD_SIGNATURE, f"EE_ETH_SIGN is not by {expected}")
