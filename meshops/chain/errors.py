"""The chain layer's errors, all under ``meshops.errors.ChainError``.

    ChainError
    ├── ChainUnavailable        the JSON-RPC endpoint cannot be reached or started
    ├── CompileError            solc is missing or the Solidity sources do not compile
    ├── ArtifactError           a compiled artifact or deployment file is missing or stale
    ├── AgreementError          oracles' values cannot be agreed (too few of them)
    ├── TransactionFailed       a transaction was mined but failed, or never got a receipt
    └── ContractRevert          a call or transaction reverted; ``error`` names the custom error
        ├── Unauthorized            the caller may not do this (not the owner, client, minter)
        ├── SignatureRejected       too few, duplicated, malformed or non-oracle signatures
        ├── AlreadyClaimed          an epoch was already paid
        ├── InsufficientFunds       token balance or allowance too low
        └── CapExceeded             minting would pass the token cap

A revert carries the decoded custom error (``error`` and ``error_args``) so callers branch on the
name, never on the text; the text is for people.
"""

from __future__ import annotations

from typing import Any

from meshops.errors import ChainError

__all__ = [
    "AgreementError",
    "AlreadyClaimed",
    "ArtifactError",
    "CapExceeded",
    "ChainError",
    "ChainUnavailable",
    "CompileError",
    "ContractRevert",
    "InsufficientFunds",
    "SignatureRejected",
    "TransactionFailed",
    "Unauthorized",
]


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached, or a local chain could not start."""


class CompileError(ChainError):
    """The Solidity compiler is missing or the sources do not compile."""


class ArtifactError(ChainError):
    """A compiled artifact or a deployment file is missing, malformed or out of date."""


class AgreementError(ChainError):
    """The oracles' values cannot be agreed: fewer of them than required."""


class TransactionFailed(ChainError):
    """A transaction was mined with status 0 for an unknown reason, or got no receipt."""


class ContractRevert(ChainError):
    """A call or transaction reverted.

    ``error`` is the custom error's name (``"EpochAlreadyClaimed"``, ``"Error"`` for a
    ``require`` string, ``"Panic"``, or ``""`` when the data could not be decoded) and
    ``error_args`` its arguments by name; ``data`` is the raw revert data.
    """

    def __init__(self, message: str, error: str, args: dict[str, Any], data: bytes) -> None:
        super().__init__(message)
        self.error = error
        self.error_args = args
        self.data = data

    @property
    def message(self) -> str:
        """The human-readable text (same as ``str(exc)``)."""
        return str(self)


class Unauthorized(ContractRevert):
    """The sender may not do this: not the licence owner, the job's client, a minter, the owner."""


class SignatureRejected(ContractRevert):
    """Oracle or node signatures were refused: too few, duplicated, malformed or by a stranger."""


class AlreadyClaimed(ContractRevert):
    """An epoch was already paid to this licence or this node."""


class InsufficientFunds(ContractRevert):
    """The sender's token balance or allowance is too low."""


class CapExceeded(ContractRevert):
    """Minting would take the token supply past its cap."""
