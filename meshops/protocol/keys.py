"""Node identity: one secp256k1 key, its ``0xai_`` address and its Ethereum address.

Two libraries on purpose: libsecp256k1 (``coincurve``) signs, verifies and does ECDH several
times faster than OpenSSL, while ``cryptography`` reads and writes the PKCS#8 PEM files the
reference SDK keeps its key in, so a key moves between MeshOps and ``ratio1`` unchanged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import tempfile
from pathlib import Path

import coincurve
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_utils import keccak, to_checksum_address

from meshops.errors import KeyFormatError

__all__ = [
    "ADDRESS_PREFIX",
    "LEGACY_ADDRESS_PREFIX",
    "NodeKey",
    "eth_address_of",
    "is_address",
    "parse_address",
    "personal_digest",
    "public_key_from_address",
]

ADDRESS_PREFIX = "0xai_"
LEGACY_ADDRESS_PREFIX = "aixp_"
_ADDRESS_BODY = re.compile(r"[A-Za-z0-9_-]{44}")
"""urlsafe base64 of a 33-byte compressed point: 44 characters, never padded (33 = 3 * 11)."""

_ETH_PREFIX = b"\x19Ethereum Signed Message:\n"


class NodeKey:
    """A node's (or SDK's) private key with the identities derived from it.

    The secret never appears in ``repr``; equality is by public key.
    """

    __slots__ = ("_secret", "_sk", "_public", "_address", "_eth_address")

    def __init__(self, secret: bytes) -> None:
        """Wrap a raw 32-byte secret; prefer ``generate``, ``from_pem`` or ``load``."""
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise KeyFormatError("a secp256k1 secret is exactly 32 bytes")
        try:
            self._sk = coincurve.PrivateKey(secret)
        except ValueError as exc:
            raise KeyFormatError("secret is not in the secp256k1 scalar range") from exc
        self._secret = secret
        self._public = self._sk.public_key.format(compressed=True)
        self._address = ADDRESS_PREFIX + base64.urlsafe_b64encode(self._public).decode("ascii")
        self._eth_address = _eth_address(self._sk.public_key)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls) -> NodeKey:
        """A fresh random key (from the OS CSPRNG)."""
        while True:
            secret = os.urandom(32)
            try:
                return cls(secret)
            except KeyFormatError:  # out of range: probability ~2**-128, draw again
                continue

    @classmethod
    def from_pem(cls, data: bytes | str, password: bytes | str | None = None) -> NodeKey:
        """Read a PEM private key (PKCS#8 or SEC1, as the reference writes it)."""
        if isinstance(data, str):
            try:
                data = data.encode("ascii")
            except UnicodeEncodeError as exc:
                raise KeyFormatError("PEM text must be ASCII") from exc
        if not isinstance(data, bytes):
            raise KeyFormatError(f"PEM data must be bytes or str, not {type(data).__name__}")
        if isinstance(password, str):
            password = password.encode("utf-8")
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"not a readable PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFormatError(f"PEM holds a {type(key).__name__}, not an elliptic-curve key")
        if not isinstance(key.curve, ec.SECP256K1):
            raise KeyFormatError(
                f"PEM key is on curve {key.curve.name}, MeshOps keys are secp256k1"
            )
        return cls(key.private_numbers().private_value.to_bytes(32, "big"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeKey:
        """Read a key file written by ``save`` (or by the reference SDK).

        A missing or unreadable file raises the ``OSError``; bad content raises KeyFormatError.
        """
        return cls.from_pem(Path(path).read_bytes())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the key as unencrypted PKCS#8 PEM, mode 0600, atomically.

        Atomic (temporary file, fsync, rename) so a crash never leaves a half-written key that
        would make the node come back with a different identity.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(self.to_pem())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        if os.name == "posix":
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return target

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM, the format ``ratio1`` reads and writes."""
        key = ec.derive_private_key(int.from_bytes(self._secret, "big"), ec.SECP256K1())
        return key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    # -- identities -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``0xai_`` + urlsafe base64 of the compressed public key (49 characters)."""
        return self._address

    @property
    def eth_address(self) -> str:
        """The same key's Ethereum account, EIP-55 checksummed."""
        return self._eth_address

    @property
    def public_bytes(self) -> bytes:
        """The 33-byte SEC1 compressed public key."""
        return self._public

    # -- operations ---------------------------------------------------------------------------
    def sign_digest(self, digest: bytes) -> bytes:
        """DER ECDSA signature (low S) of a 32-byte message digest, as the reference signs it.

        The reference hands the digest to OpenSSL's ``ECDSA(SHA256)``, so the curve signs
        SHA-256(digest); libsecp256k1 does the same with its default hasher.
        """
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise ValueError("sign_digest expects a 32-byte SHA-256 digest")
        return self._sk.sign(digest)

    def sign_personal(self, text: str) -> bytes:
        """EIP-191 ``personal_sign`` of ``text``: 65 bytes r || s || v (v is 27 or 28).

        Same bytes as ``eth_account``'s ``sign_message(encode_defunct(text=...))`` (both are
        RFC 6979 deterministic), at a fraction of its cost.
        """
        sig = self._sk.sign_recoverable(personal_digest(text.encode("utf-8")), hasher=None)
        return sig[:64] + bytes([sig[64] + 27])

    def shared_secret(self, peer_public: bytes) -> bytes:
        """ECDH with a peer's public key: the 32-byte x-coordinate of the shared point.

        That is what OpenSSL's ECDH (the reference) yields; coincurve's own ``ecdh`` hashes
        the point instead, hence the explicit multiplication.
        """
        try:
            point = coincurve.PublicKey(peer_public).multiply(self._secret)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"peer public key is not a secp256k1 point: {exc}") from exc
        return point.format(compressed=True)[1:]

    def __repr__(self) -> str:
        return f"NodeKey({self._address})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeKey):
            return NotImplemented
        return self._public == other._public

    def __hash__(self) -> int:
        return hash(self._public)


def personal_digest(data: bytes) -> bytes:
    """The keccak-256 digest EIP-191 (``personal_sign``) signs for ``data``."""
    return keccak(_ETH_PREFIX + str(len(data)).encode("ascii") + data)


def _eth_address(public: coincurve.PublicKey) -> str:
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


@functools.lru_cache(maxsize=4096)
def _decode_address(text: str) -> tuple[str, coincurve.PublicKey]:
    """Validate an address and return its canonical form and public key (cached: hot path)."""
    if text.startswith(ADDRESS_PREFIX):
        body = text[len(ADDRESS_PREFIX) :]
    elif text.startswith(LEGACY_ADDRESS_PREFIX):
        body = text[len(LEGACY_ADDRESS_PREFIX) :]
    else:
        raise KeyFormatError(
            f"address must start with {ADDRESS_PREFIX!r} (or legacy {LEGACY_ADDRESS_PREFIX!r}):"
            f" {text[:60]!r}"
        )
    if len(body) != 44:
        raise KeyFormatError(
            f"wrong address length: expected 44 base64 characters after the prefix, got {len(body)}"
        )
    if not _ADDRESS_BODY.fullmatch(body):
        raise KeyFormatError(f"address is not urlsafe base64: {text!r}")
    try:
        raw = base64.urlsafe_b64decode(body)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"address is not urlsafe base64: {text!r}") from exc
    try:
        public = coincurve.PublicKey(raw)
    except ValueError as exc:
        raise KeyFormatError(
            f"address is not a secp256k1 public key (no such point): {text!r}"
        ) from exc
    return ADDRESS_PREFIX + body, public


def _public_key(address: str) -> coincurve.PublicKey:
    if not isinstance(address, str):
        raise KeyFormatError(f"address must be a str, not {type(address).__name__}")
    return _decode_address(address)[1]


def parse_address(text: object) -> str:
    """Validate an address and return it in the ``0xai_`` form (legacy ``aixp_`` accepted).

    Raises KeyFormatError naming the problem: not a str, wrong prefix or length, not base64,
    or not a point on the curve.
    """
    if not isinstance(text, str):
        raise KeyFormatError(f"address must be a str, not {type(text).__name__}")
    return _decode_address(text)[0]


def is_address(text: object) -> bool:
    """True when ``text`` is a valid ``0xai_``/``aixp_`` address."""
    try:
        parse_address(text)
    except KeyFormatError:
        return False
    return True


def public_key_from_address(addr: str) -> bytes:
    """The 33-byte compressed public key inside an address."""
    return _public_key(addr).format(compressed=True)


@functools.lru_cache(maxsize=4096)
def _eth_of_canonical(address: str) -> str:
    return _eth_address(_decode_address(address)[1])


def eth_address_of(addr: str) -> str:
    """The EIP-55 Ethereum address of the key behind a ``0xai_`` address."""
    return _eth_of_canonical(parse_address(addr))
