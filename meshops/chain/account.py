"""A node's key as an Ethereum account that signs transactions and messages locally.

The node's secp256k1 key is its Ethereum account, so the chain layer signs with the very key
the node signs its messages with; nothing is ever sent to a node's (unlocked) account.
``NodeKey`` keeps its secret private and exports it only as PEM, which is what we read here.
"""

from __future__ import annotations

from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from meshops.errors import KeyFormatError
from meshops.protocol.keys import NodeKey

__all__ = ["KeyLike", "as_account", "recover_signer", "sign_digest"]

_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

KeyLike: TypeAlias = NodeKey | LocalAccount | bytes | str
"""A ``NodeKey``, an eth_account ``LocalAccount``, 32 raw secret bytes or their hex."""


def as_account(key: KeyLike) -> LocalAccount:
    """The ``LocalAccount`` for any accepted key form (same address as ``NodeKey.eth_address``)."""
    if isinstance(key, LocalAccount):
        return key
    if isinstance(key, NodeKey):
        private = serialization.load_pem_private_key(key.to_pem(), password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyFormatError("NodeKey PEM did not hold an elliptic-curve key")
        secret = private.private_numbers().private_value.to_bytes(32, "big")
        account: LocalAccount = Account.from_key(secret)
        if account.address != key.eth_address:
            raise KeyFormatError("NodeKey and its PEM export disagree on the address")
        return account
    if isinstance(key, bytes | str):
        try:
            return Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"not a secp256k1 private key: {exc}") from exc
    raise KeyFormatError(f"cannot use a {type(key).__name__} as an Ethereum account")


def sign_digest(key: KeyLike, digest: bytes) -> bytes:
    """EIP-191 ``personal_sign`` of a 32-byte digest: 65 bytes r || s || v, v in {27, 28}.

    This is what ``MessageHashUtils.toEthSignedMessageHash(bytes32)`` + ``ECDSA.recover``
    check on-chain.
    """
    if len(digest) != 32:
        raise ValueError("sign_digest expects a 32-byte digest")
    signed = as_account(key).sign_message(encode_defunct(primitive=digest))
    return bytes(signed.signature)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made ``signature`` over ``digest`` (EIP-191).

    As strict as OpenZeppelin's ``ECDSA.tryRecover``: 65 bytes, v of 27 or 28 and a low s,
    so a signature accepted here is accepted on-chain. Raises ``ValueError`` otherwise.
    """
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes, not {len(signature)}")
    if signature[64] not in (27, 28):
        raise ValueError(f"signature v is {signature[64]}, not 27 or 28")
    if int.from_bytes(signature[32:64], "big") > _HALF_N:
        raise ValueError("signature s is in the upper half of the curve order (malleable)")
    return to_checksum_address(
        Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    )
