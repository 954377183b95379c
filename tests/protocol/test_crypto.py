"""encrypt / encrypt_multi / decrypt: round trips, wire layout, and every failure typed."""

from __future__ import annotations

import base64
import json
import os
import zlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from meshops.errors import CryptoError, KeyFormatError
from meshops.protocol import NodeKey, decrypt, encrypt, encrypt_multi


@pytest.fixture(scope="module")
def alice() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture(scope="module")
def bob() -> NodeKey:
    return NodeKey.generate()


def session_key(own: NodeKey, peer: NodeKey) -> bytes:
    secret = own.shared_secret(peer.public_bytes)
    return HKDF(hashes.SHA256(), 32, None, b"0xai handshake data").derive(secret)


def test_single_round_trip_and_wire_layout(alice: NodeKey, bob: NodeKey) -> None:
    text = '{"ACTION":"STOP","note":"ș ☃"}'
    ciphertext = encrypt(text, bob.address, alice)
    raw = base64.b64decode(ciphertext, validate=True)  # standard alphabet
    nonce, flag, sealed = raw[:12], raw[12], raw[13:]
    assert flag == 1
    plain = AESGCM(session_key(alice, bob)).decrypt(nonce, sealed, None)
    assert zlib.decompress(plain).decode() == text
    assert decrypt(ciphertext, alice.address, bob) == text
    assert encrypt(text, bob.address, alice) != ciphertext  # fresh nonce each time


def test_uncompressed_single_form_is_read(alice: NodeKey, bob: NodeKey) -> None:
    nonce = os.urandom(12)
    sealed = AESGCM(session_key(alice, bob)).encrypt(nonce, b"plain", None)
    ciphertext = base64.b64encode(nonce + b"\x00" + sealed).decode()
    assert decrypt(ciphertext, alice.address, bob) == "plain"


def test_multi_round_trip_for_each_recipient(alice: NodeKey, bob: NodeKey) -> None:
    carol = NodeKey.generate()
    text = "x" * 1000
    ciphertext = encrypt_multi(text, [bob.address, "aixp_" + carol.address[5:]], alice)
    package = json.loads(zlib.decompress(base64.b64decode(ciphertext, validate=True)))
    assert package["M"] is True and package["c"] == "01"
    assert [k["a"] for k in package["k"]] == [bob.address, carol.address]  # 0xai_ form
    assert len(bytes.fromhex(package["n"])) == 12
    assert decrypt(ciphertext, alice.address, bob) == text
    assert decrypt(ciphertext, alice.address, carol) == text


def test_multi_drops_duplicates_and_needs_a_recipient(alice: NodeKey, bob: NodeKey) -> None:
    ciphertext = encrypt_multi("t", [bob.address, bob.address], alice)
    package = json.loads(zlib.decompress(base64.b64decode(ciphertext)))
    assert len(package["k"]) == 1
    with pytest.raises(ValueError):
        encrypt_multi("t", [], alice)


def test_outsider_cannot_decrypt(alice: NodeKey, bob: NodeKey) -> None:
    eve = NodeKey.generate()
    with pytest.raises(CryptoError, match="no key for"):
        decrypt(encrypt_multi("s", [bob.address], alice), alice.address, eve)
    with pytest.raises(CryptoError, match="does not authenticate"):
        decrypt(encrypt("s", bob.address, alice), alice.address, eve)


def test_wrong_sender_fails_authentication(alice: NodeKey, bob: NodeKey) -> None:
    ciphertext = encrypt("s", bob.address, alice)
    with pytest.raises(CryptoError, match="does not authenticate"):
        decrypt(ciphertext, NodeKey.generate().address, bob)


def test_tampered_ciphertext_fails(alice: NodeKey, bob: NodeKey) -> None:
    raw = bytearray(base64.b64decode(encrypt("secret", bob.address, alice)))
    raw[-1] ^= 1
    with pytest.raises(CryptoError):
        decrypt(base64.b64encode(bytes(raw)).decode(), alice.address, bob)


@pytest.mark.parametrize(
    ("ciphertext", "match"),
    [
        ("not base64 !", "not base64"),
        ("QUJD", "too short"),
        (base64.b64encode(b"\x00" * 40).decode(), "authenticate"),
        ("ș", "not base64"),
    ],
)
def test_malformed_ciphertexts(alice: NodeKey, bob: NodeKey, ciphertext: str, match: str) -> None:
    with pytest.raises(CryptoError, match=match):
        decrypt(ciphertext, alice.address, bob)


def test_non_str_ciphertext_and_bad_sender(alice: NodeKey, bob: NodeKey) -> None:
    with pytest.raises(CryptoError):
        decrypt(b"abc", alice.address, bob)  # type: ignore[arg-type]
    with pytest.raises(KeyFormatError):
        decrypt("QUJD", "0xai_bad", bob)


def test_malformed_multi_package_is_reported(alice: NodeKey, bob: NodeKey) -> None:
    package = {"M": True, "c": "01", "n": "zz", "d": "", "k": []}
    ciphertext = base64.b64encode(zlib.compress(json.dumps(package).encode())).decode()
    with pytest.raises(CryptoError, match="'n' is not hex"):
        decrypt(ciphertext, alice.address, bob)


def test_decompression_is_bounded(alice: NodeKey, bob: NodeKey) -> None:
    bomb = "0" * (4 * 1024 * 1024)
    single = encrypt(bomb, bob.address, alice)
    multi = encrypt_multi(bomb, [bob.address], alice)
    assert len(single) < 20_000
    for ciphertext in (single, multi):
        with pytest.raises(CryptoError, match="exceed"):
            decrypt(ciphertext, alice.address, bob, max_plaintext_bytes=1024 * 1024)
        assert decrypt(ciphertext, alice.address, bob) == bomb  # within the default limit


def test_deeply_nested_package_is_refused_not_crashing(alice: NodeKey, bob: NodeKey) -> None:
    import sys

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        package = b'{"M": true, "k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ciphertext = base64.b64encode(zlib.compress(package)).decode()
        with pytest.raises(CryptoError):
            decrypt(ciphertext, alice.address, bob)
    finally:
        sys.setrecursionlimit(previous)
