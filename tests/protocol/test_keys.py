"""NodeKey and addresses: formats, PEM files, and the errors malformed input must raise."""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account

from meshops.errors import KeyFormatError
from meshops.protocol import (
    NodeKey,
    eth_address_of,
    is_address,
    parse_address,
    public_key_from_address,
)


@pytest.fixture(scope="module")
def key() -> NodeKey:
    return NodeKey.generate()


def test_address_is_prefix_plus_urlsafe_base64_of_compressed_key(key: NodeKey) -> None:
    assert key.address.startswith("0xai_")
    assert len(key.address) == 49
    assert base64.urlsafe_b64decode(key.address[5:]) == key.public_bytes
    assert len(key.public_bytes) == 33 and key.public_bytes[0] in (2, 3)


def test_eth_address_is_the_same_keys_ethereum_account(key: NodeKey) -> None:
    secret = key.to_pem()
    loaded = serialization.load_pem_private_key(secret, None)
    private_value = loaded.private_numbers().private_value.to_bytes(32, "big")
    assert key.eth_address == Account.from_key(private_value).address
    assert eth_address_of(key.address) == key.eth_address


def test_generate_gives_distinct_keys() -> None:
    assert NodeKey.generate().address != NodeKey.generate().address


def test_pem_round_trip_is_pkcs8_and_keeps_identity(key: NodeKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    again = NodeKey.from_pem(pem)
    assert again == key and again.address == key.address
    assert NodeKey.from_pem(pem.decode("ascii")).address == key.address


def test_from_pem_reads_sec1_and_encrypted_keys() -> None:
    private = ec.generate_private_key(ec.SECP256K1())
    sec1 = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    expected = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert NodeKey.from_pem(sec1).public_bytes == expected
    locked = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert NodeKey.from_pem(locked, password="pw").public_bytes == expected
    with pytest.raises(KeyFormatError, match="PEM"):
        NodeKey.from_pem(locked)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not a pem", "PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PEM"),
        ("clé", "ASCII"),
        (12, "bytes or str"),
    ],
)
def test_from_pem_refuses_garbage(data: object, match: str) -> None:
    with pytest.raises(KeyFormatError, match=match):
        NodeKey.from_pem(data)  # type: ignore[arg-type]


def test_from_pem_refuses_other_curves() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="secp256r1"):
        NodeKey.from_pem(p256)


def test_secret_must_be_32_bytes_in_range() -> None:
    with pytest.raises(KeyFormatError):
        NodeKey(b"\x01" * 31)
    with pytest.raises(KeyFormatError):
        NodeKey(b"\x00" * 32)
    with pytest.raises(KeyFormatError):
        NodeKey(b"\xff" * 32)  # above the group order


def test_save_is_0600_creates_parents_and_leaves_no_temp_file(tmp_path, key: NodeKey) -> None:
    target = tmp_path / "deep" / "er" / "node.pem"
    key.save(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert os.listdir(target.parent) == ["node.pem"]
    assert NodeKey.load(target) == key
    other = NodeKey.generate()
    other.save(target)  # replaces atomically
    assert NodeKey.load(target) == other
    assert os.listdir(target.parent) == ["node.pem"]


def test_load_missing_file_raises_oserror(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        NodeKey.load(tmp_path / "absent.pem")


def test_repr_does_not_leak_the_secret(key: NodeKey) -> None:
    text = repr(key)
    assert key.address in text
    assert key.to_pem().decode() not in text and "PRIVATE" not in text


def test_sign_digest_is_der_low_s_and_verifies_with_openssl(key: NodeKey) -> None:
    digest = hashlib.sha256(b"hello").digest()
    der = key.sign_digest(digest)
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    _, s = decode_dss_signature(der)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    assert s <= n // 2
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key.public_bytes)
    public.verify(der, digest, ec.ECDSA(hashes.SHA256()))  # raises if invalid
    with pytest.raises(ValueError):
        key.sign_digest(b"short")


def test_shared_secret_equals_openssl_ecdh(key: NodeKey) -> None:
    peer = NodeKey.generate()
    mine = key.shared_secret(peer.public_bytes)
    assert mine == peer.shared_secret(key.public_bytes)
    ours = serialization.load_pem_private_key(key.to_pem(), None)
    theirs = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), peer.public_bytes)
    assert mine == ours.exchange(ec.ECDH(), theirs)
    with pytest.raises(KeyFormatError):
        key.shared_secret(b"\x02" + b"\x00" * 32)


def test_sign_personal_matches_eth_account(key: NodeKey) -> None:
    from eth_account.messages import encode_defunct

    pem = serialization.load_pem_private_key(key.to_pem(), None)
    secret = pem.private_numbers().private_value.to_bytes(32, "big")
    text = "ab" * 32
    expected = Account.sign_message(encode_defunct(text=text), private_key=secret).signature
    assert key.sign_personal(text) == bytes(expected)


def test_parse_address_accepts_legacy_prefix(key: NodeKey) -> None:
    legacy = "aixp_" + key.address[5:]
    assert parse_address(legacy) == key.address
    assert parse_address(key.address) == key.address
    assert public_key_from_address(legacy) == key.public_bytes
    assert is_address(legacy) and is_address(key.address)


def _not_a_point_body() -> str:
    """A compressed encoding whose x has no y on the curve."""
    p = 2**256 - 2**32 - 977
    for x in range(1, 100):
        rhs = (x**3 + 7) % p
        if pow(rhs, (p - 1) // 2, p) != 1:
            return base64.urlsafe_b64encode(b"\x02" + x.to_bytes(32, "big")).decode()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "must be a str"),
        (12345, "must be a str"),
        (b"0xai_AAAA", "must be a str"),
        ("", "must start with"),
        ("0xAI_" + "A" * 44, "must start with"),
        ("0xai_" + "A" * 43, "wrong address length"),
        ("0xai_" + "A" * 45, "wrong address length"),
        ("0xai_" + "A" * 42 + "==", "not urlsafe base64"),
        ("0xai_" + "+" * 44, "not urlsafe base64"),
        ("0xai_" + "é" * 44, "not urlsafe base64"),
        ("0xai_" + "A" * 44, "not a secp256k1 public key"),
        ("0xai_" + _not_a_point_body(), "not a secp256k1 public key"),
    ],
)
def test_parse_address_names_what_is_wrong(text: object, match: str) -> None:
    with pytest.raises(KeyFormatError, match=match):
        parse_address(text)
    assert not is_address(text)


def test_uncompressed_or_other_prefix_bytes_are_refused(key: NodeKey) -> None:
    body = base64.urlsafe_b64encode(b"\x04" + key.public_bytes[1:]).decode()
    with pytest.raises(KeyFormatError, match="not a secp256k1 public key"):
        parse_address("0xai_" + body)
