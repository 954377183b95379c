"""What oracles compute and sign, as pure functions (no chain, no network).

Per epoch each oracle turns the heartbeats it saw from a node into an availability from 0 to
255; the oracles exchange their values and agree on the median (a value one of them actually
reported, robust to a minority of wrong or lying oracles); each then signs the agreed values
for the node's claim. ``verify_claim`` repeats the contract's checks so a node can tell a bad
bundle of signatures before paying gas for a claim that would revert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from meshops.chain.account import KeyLike, recover_signer, sign_digest
from meshops.chain.errors import AgreementError, SignatureRejected
from meshops.chain.messages import attestation_digest, claim_digest

__all__ = [
    "MAX_AVAILABILITY",
    "EpochClock",
    "agree",
    "availability",
    "sign_attestation",
    "sign_claim",
    "verify_claim",
]

MAX_AVAILABILITY = 255


@dataclass(frozen=True)
class EpochClock:
    """Epoch numbering shared with MeshRewards: epoch 0 starts at ``genesis`` (unix seconds)."""

    genesis: int
    length: int

    def __post_init__(self) -> None:
        if self.length <= 0:
            raise ValueError("epoch length must be positive")

    def epoch_at(self, timestamp: float) -> int:
        """The epoch ``timestamp`` falls in (0 before genesis, as the contract counts)."""
        return 0 if timestamp < self.genesis else int((timestamp - self.genesis) // self.length)

    def start(self, epoch: int) -> int:
        return self.genesis + epoch * self.length

    def end(self, epoch: int) -> int:
        """First second of the next epoch."""
        return self.start(epoch + 1)


def availability(
    heartbeats: Iterable[float], clock: EpochClock, epoch: int, interval: float
) -> int:
    """A node's availability in ``epoch`` (0-255) from the times its heartbeats arrived.

    The epoch is cut into slots of ``interval`` seconds (the heartbeat period); the score is
    the share of slots with at least one heartbeat, rounded down, so a burst of heartbeats
    cannot make up for silence and only a node heard in every slot scores 255.
    """
    if interval <= 0:
        raise ValueError("heartbeat interval must be positive")
    start, end = clock.start(epoch), clock.end(epoch)
    slots = math.ceil(clock.length / interval)
    seen = {int((t - start) // interval) for t in heartbeats if start <= t < end}
    return len(seen) * MAX_AVAILABILITY // slots


def agree(values: Mapping[str, int], required: int) -> int:
    """The agreed availability: the lower median of the oracles' values.

    ``values`` maps oracle address to its value; at least ``required`` oracles must have
    reported, otherwise there is nothing the contract's k-of-n check would accept.
    """
    if required < 1:
        raise ValueError("at least one oracle value is required")
    if len(values) < required:
        raise AgreementError(f"{len(values)} oracle values, {required} required")
    for oracle, value in values.items():
        if not 0 <= value <= MAX_AVAILABILITY:
            raise AgreementError(f"oracle {oracle} reported {value}, outside 0-255")
    ordered = sorted(values.values())
    return ordered[(len(ordered) - 1) // 2]


def sign_claim(
    key: KeyLike,
    chain_id: int,
    rewards: str,
    node: str,
    epochs: Sequence[int],
    availabilities: Sequence[int],
) -> bytes:
    """An oracle's signature over a node's agreed availabilities, as MeshRewards checks it."""
    return sign_digest(key, claim_digest(chain_id, rewards, node, epochs, availabilities))


def sign_attestation(
    key: KeyLike,
    chain_id: int,
    escrow: str,
    job_id: int,
    round_: int,
    final: bool,
    nodes: Sequence[str],
    amounts: Sequence[int],
) -> bytes:
    """An oracle's signature crediting ``amounts`` to ``nodes`` for a job, as MeshEscrow checks."""
    digest = attestation_digest(chain_id, escrow, job_id, round_, final, nodes, amounts)
    return sign_digest(key, digest)


def verify_claim(
    signatures: Sequence[bytes],
    oracles: Iterable[str],
    threshold: int,
    *,
    chain_id: int,
    rewards: str,
    node: str,
    epochs: Sequence[int],
    availabilities: Sequence[int],
) -> list[str]:
    """The signers, in order, if the contract would accept these signatures; else raise.

    Mirrors ``MeshController.verify``: at least ``threshold`` signatures, every one valid,
    by an oracle, and no oracle twice. Raises ``SignatureRejected`` named like the contract's
    error, so callers handle an off-chain and an on-chain refusal alike.
    """
    digest = claim_digest(chain_id, rewards, node, epochs, availabilities)
    allowed = {o.lower() for o in oracles}
    if len(signatures) < threshold:
        raise _rejected(
            "NotEnoughSignatures",
            f"{len(signatures)} oracle signatures given, {threshold} required",
            given=len(signatures),
            required=threshold,
        )
    signers: list[str] = []
    for index, signature in enumerate(signatures):
        try:
            signer = recover_signer(digest, signature)
        except ValueError as exc:
            raise _rejected(
                "InvalidSignature", f"signature {index} is malformed: {exc}", index=index
            ) from exc
        if signer.lower() not in allowed:
            raise _rejected(
                "SignerNotOracle",
                f"signature {index} was made by {signer}, which is not an oracle",
                index=index,
                signer=signer,
            )
        if signer in signers:
            raise _rejected(
                "DuplicateSigner",
                f"signature {index} repeats oracle {signer}",
                index=index,
                signer=signer,
            )
        signers.append(signer)
    return signers


def _rejected(error: str, message: str, **args: object) -> SignatureRejected:
    return SignatureRejected(message, error, dict(args), b"")
