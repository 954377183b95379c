"""The token layer on an EVM chain: contracts, a client, local chains and oracle logic.

Public names are re-exported here and imported on first use, so that the pure parts
(``oracle``, ``messages``, ``errors``) load without importing web3 or eth-tester (both are
dependencies of MeshOps, but slow to import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AgreementError",
    "AlreadyClaimed",
    "AnvilChain",
    "ArtifactError",
    "CapExceeded",
    "ChainClient",
    "ChainUnavailable",
    "CompileError",
    "ContractRevert",
    "DEV_KEYS",
    "Deployment",
    "EmbeddedChain",
    "EpochClock",
    "Escrow",
    "InsufficientFunds",
    "JobInfo",
    "JobStatus",
    "LicenseInfo",
    "Licenses",
    "Rewards",
    "SignatureRejected",
    "Token",
    "TokenConfig",
    "TokenLayer",
    "TransactionFailed",
    "Unauthorized",
    "agree",
    "availability",
    "decode_revert",
    "deploy",
    "find_anvil",
    "sign_attestation",
    "sign_claim",
    "verify_claim",
]

_HOME = {
    "anvil": ("AnvilChain", "find_anvil"),
    "client": ("ChainClient",),
    "deployment": ("Deployment", "TokenConfig", "deploy"),
    "devnet": ("DEV_KEYS",),
    "embedded": ("EmbeddedChain",),
    "errors": (
        "AgreementError",
        "AlreadyClaimed",
        "ArtifactError",
        "CapExceeded",
        "ChainUnavailable",
        "CompileError",
        "ContractRevert",
        "InsufficientFunds",
        "SignatureRejected",
        "TransactionFailed",
        "Unauthorized",
    ),
    "escrow": ("Escrow", "JobInfo", "JobStatus"),
    "layer": ("TokenLayer",),
    "licenses": ("LicenseInfo", "Licenses"),
    "oracle": (
        "EpochClock",
        "agree",
        "availability",
        "sign_attestation",
        "sign_claim",
        "verify_claim",
    ),
    "revert": ("decode_revert",),
    "rewards": ("Rewards",),
    "token": ("Token",),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'meshops.chain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"meshops.chain.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from meshops.chain.anvil import AnvilChain, find_anvil
    from meshops.chain.client import ChainClient
    from meshops.chain.deployment import Deployment, TokenConfig, deploy
    from meshops.chain.devnet import DEV_KEYS
    from meshops.chain.embedded import EmbeddedChain
    from meshops.chain.errors import (
        AgreementError,
        AlreadyClaimed,
        ArtifactError,
        CapExceeded,
        ChainUnavailable,
        CompileError,
        ContractRevert,
        InsufficientFunds,
        SignatureRejected,
        TransactionFailed,
        Unauthorized,
    )
    from meshops.chain.escrow import Escrow, JobInfo, JobStatus
    from meshops.chain.layer import TokenLayer
    from meshops.chain.licenses import LicenseInfo, Licenses
    from meshops.chain.oracle import (
        EpochClock,
        agree,
        availability,
        sign_attestation,
        sign_claim,
        verify_claim,
    )
    from meshops.chain.revert import decode_revert
    from meshops.chain.rewards import Rewards
    from meshops.chain.token import Token
