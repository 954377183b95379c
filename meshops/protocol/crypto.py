"""End-to-end encryption of message bodies, as the reference does it (``ratio1/bc/ec.py``).

One recipient: ECDH(own key, peer key) -> HKDF-SHA256(32 bytes, no salt, info
``b"0xai handshake data"``) -> AES-256-GCM with a random 12-byte nonce over zlib(plaintext);
wire text ``base64(nonce || 0x01 || ciphertext+tag)`` (standard base64 alphabet, padded).

Several recipients: a random 32-byte key encrypts zlib(plaintext) once; that key is wrapped for
each recipient under their ECDH-derived key; the JSON package
``{"M": true, "c": "01", "n": hex nonce, "d": hex data, "k": [{"a": address, "k": hex(nonce_i ||
wrapped key)}]}`` is zlib-compressed and base64-encoded.

Decompression is bounded (``max_plaintext_bytes``): a signed sender could otherwise make a
receiver inflate a 2 MB message into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from meshops.errors import CryptoError, KeyFormatError
from meshops.protocol.canonical import json_too_deep
from meshops.protocol.constants import MAX_MESSAGE_BYTES
from meshops.protocol.keys import NodeKey, parse_address, public_key_from_address

__all__ = [
    "HKDF_INFO",
    "MAX_PLAINTEXT_BYTES",
    "decrypt",
    "encrypt",
    "encrypt_multi",
]

HKDF_INFO = b"0xai handshake data"
MAX_PLAINTEXT_BYTES = 8 * MAX_MESSAGE_BYTES
"""Largest plaintext ``decrypt`` inflates by default (16 MiB)."""

_NONCE_LEN = 12
_TAG_LEN = 16
_COMPRESSED = 1


def _session_key(key: NodeKey, peer_public: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        key.shared_secret(peer_public)
    )


def encrypt(plaintext: str, recipient: str, key: NodeKey) -> str:
    """Encrypt ``plaintext`` from ``key`` to one recipient address (single form)."""
    peer = public_key_from_address(recipient)
    nonce = os.urandom(_NONCE_LEN)
    sealed = AESGCM(_session_key(key, peer)).encrypt(
        nonce, zlib.compress(plaintext.encode("utf-8")), None
    )
    return base64.b64encode(nonce + bytes([_COMPRESSED]) + sealed).decode("ascii")


def encrypt_multi(plaintext: str, recipients: list[str], key: NodeKey) -> str:
    """Encrypt ``plaintext`` once for several recipients (multi form, even for one).

    Recipients are written in the ``0xai_`` form (the reference matches its own address
    exactly); duplicates are dropped.
    """
    addresses = list(dict.fromkeys(parse_address(r) for r in recipients))
    if not addresses:
        raise ValueError("encrypt_multi needs at least one recipient")
    content_key = os.urandom(32)
    nonce = os.urandom(_NONCE_LEN)
    data = AESGCM(content_key).encrypt(nonce, zlib.compress(plaintext.encode("utf-8")), None)
    wrapped = []
    for address in addresses:
        key_nonce = os.urandom(_NONCE_LEN)
        sealed_key = AESGCM(_session_key(key, public_key_from_address(address))).encrypt(
            key_nonce, content_key, None
        )
        wrapped.append({"a": address, "k": (key_nonce + sealed_key).hex()})
    package = {"M": True, "c": "01", "n": nonce.hex(), "d": data.hex(), "k": wrapped}
    return base64.b64encode(zlib.compress(json.dumps(package).encode("utf-8"))).decode("ascii")


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CryptoError(f"bad zlib data: {exc}") from exc
    if len(out) > limit:
        raise CryptoError(f"decompressed data exceed {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise CryptoError("zlib stream is truncated or followed by garbage")
    return out


def _open_sealed(session_key: bytes, nonce: bytes, sealed: bytes, what: str) -> bytes:
    try:
        return AESGCM(session_key).decrypt(nonce, sealed, None)
    except InvalidTag as exc:
        raise CryptoError(f"{what} does not authenticate (wrong key or tampered)") from exc
    except ValueError as exc:  # malformed nonce or data sizes
        raise CryptoError(f"{what} is malformed: {exc}") from exc


def _as_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CryptoError("decrypted plaintext is not UTF-8") from exc


def _read_package(raw: bytes, limit: int) -> dict[str, Any] | None:
    """The multi-recipient package inside ``raw``, or None when ``raw`` is not one."""
    try:
        text = _inflate(raw, limit).decode("utf-8")
        if json_too_deep(text):
            return None
        package = json.loads(text)
    except (CryptoError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(package, dict) and package.get("M") is True:
        return package
    return None


def _hex_field(package: dict[str, Any], name: str) -> bytes:
    value = package.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError(f"not a string but {type(value).__name__}")
        return bytes.fromhex(value)
    except ValueError as exc:
        raise CryptoError(f"multi-recipient package field {name!r} is not hex: {exc}") from exc


def _decrypt_multi(package: dict[str, Any], sender_public: bytes, key: NodeKey, limit: int) -> str:
    flag = package.get("c")
    try:
        compressed = int(flag, 16) if isinstance(flag, str) else None
    except ValueError:
        compressed = None
    if compressed not in (0, 1):
        raise CryptoError(f"multi-recipient package has an unknown compression flag {flag!r}")
    nonce = _hex_field(package, "n")
    data = _hex_field(package, "d")
    entries = package.get("k")
    if not isinstance(entries, list):
        raise CryptoError("multi-recipient package has no key list")
    mine = None
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("a"), str):
            continue
        try:
            if parse_address(entry["a"]) == key.address:
                mine = entry
                break
        except KeyFormatError:
            continue
    if mine is None:
        raise CryptoError(f"multi-recipient package holds no key for {key.address}")
    wrapped = _hex_field(mine, "k")
    if len(wrapped) < _NONCE_LEN + _TAG_LEN:
        raise CryptoError("wrapped key is too short")
    content_key = _open_sealed(
        _session_key(key, sender_public), wrapped[:_NONCE_LEN], wrapped[_NONCE_LEN:], "wrapped key"
    )
    plain = _open_sealed(content_key, nonce, data, "multi-recipient ciphertext")
    return _as_text(_inflate(plain, limit) if compressed == _COMPRESSED else plain)


def _decrypt_single(raw: bytes, sender_public: bytes, key: NodeKey, limit: int) -> str:
    if len(raw) < _NONCE_LEN + 1 + _TAG_LEN:
        raise CryptoError("ciphertext is too short")
    nonce, flag, sealed = raw[:_NONCE_LEN], raw[_NONCE_LEN], raw[_NONCE_LEN + 1 :]
    if flag not in (0, 1):
        raise CryptoError(f"unknown compression flag {flag}")
    plain = _open_sealed(_session_key(key, sender_public), nonce, sealed, "ciphertext")
    return _as_text(_inflate(plain, limit) if flag == _COMPRESSED else plain)


def decrypt(
    ciphertext: str,
    sender: str,
    key: NodeKey,
    *,
    max_plaintext_bytes: int = MAX_PLAINTEXT_BYTES,
) -> str:
    """Decrypt a ciphertext ``sender`` made for ``key``: the multi form first, then the single.

    Raises CryptoError saying what failed (not base64, no key for us, tag mismatch, too big
    once inflated...); KeyFormatError when ``sender`` is not an address.
    """
    sender_public = public_key_from_address(sender)
    if not isinstance(ciphertext, str):
        raise CryptoError(f"ciphertext must be a str, not {type(ciphertext).__name__}")
    try:
        raw = base64.b64decode(ciphertext.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise CryptoError(f"ciphertext is not base64: {exc}") from exc
    package = _read_package(raw, max_plaintext_bytes)
    if package is not None:
        return _decrypt_multi(package, sender_public, key, max_plaintext_bytes)
    try:
        return _decrypt_single(raw, sender_public, key, max_plaintext_bytes)
    except CryptoError as exc:
        raise CryptoError(
            f"cannot decrypt: not a multi-recipient package, and as a single-recipient"
            f" ciphertext: {exc}"
        ) from exc
