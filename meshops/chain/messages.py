"""The exact digests the contracts check signatures against, computed off-chain.

Each is keccak-256 of ``abi.encodePacked(...)`` with the chain id and the verifying contract
first, so a signature made for one deployment cannot be replayed on another chain or against
another contract. Signers sign the digest with EIP-191 (``account.sign_digest``). The
contracts expose the same functions as views (``claimDigest``, ``attestationDigest``,
``linkDigest``); tests keep both sides equal.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_abi.packed import encode_packed
from eth_utils import keccak, to_checksum_address

__all__ = ["attestation_digest", "claim_digest", "link_digest"]


def claim_digest(
    chain_id: int,
    rewards: str,
    node: str,
    epochs: Sequence[int],
    availabilities: Sequence[int],
) -> bytes:
    """What oracles sign so that ``node``'s licence owner can claim ``epochs`` (MeshRewards)."""
    head = encode_packed(["uint256", "address", "address"], [chain_id, _addr(rewards), _addr(node)])
    return keccak(head + _array("uint256", epochs) + _array("uint256", availabilities))


def attestation_digest(
    chain_id: int,
    escrow: str,
    job_id: int,
    round_: int,
    final: bool,
    nodes: Sequence[str],
    amounts: Sequence[int],
) -> bytes:
    """What oracles sign to credit ``amounts`` to ``nodes`` in round ``round_`` (MeshEscrow)."""
    head = encode_packed(
        ["uint256", "address", "uint256", "uint256", "bool"],
        [chain_id, _addr(escrow), job_id, round_, final],
    )
    return keccak(head + _array("address", [_addr(n) for n in nodes]) + _array("uint256", amounts))


def link_digest(chain_id: int, license: str, license_id: int, node: str, nonce: int) -> bytes:
    """What a node signs to consent to being linked to ``license_id`` (MeshLicense)."""
    return keccak(
        encode_packed(
            ["uint256", "address", "string", "uint256", "address", "uint256"],
            [chain_id, _addr(license), "link", license_id, _addr(node), nonce],
        )
    )


def _array(element: str, values: Sequence[object]) -> bytes:
    """``abi.encodePacked`` of an array: each element padded to 32 bytes, no length.

    (``eth_abi.packed`` packs array elements tightly, which is not what Solidity does.)
    """
    return b"".join(encode([element], [value]) for value in values)


def _addr(address: str) -> str:
    return to_checksum_address(address)
