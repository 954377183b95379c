"""Turn revert data into a ``ContractRevert`` with a sentence a person understands.

Every custom error of every MeshOps contract (and the OpenZeppelin errors they inherit) is
known by its 4-byte selector from the committed ABIs, so a revert decodes the same way
whichever contract raised it: a rewards claim that fails inside the controller still reads
"signature 1 was made by 0x..., which is not an oracle".
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from meshops.chain.compiled import all_abis
from meshops.chain.errors import (
    AlreadyClaimed,
    CapExceeded,
    ContractRevert,
    InsufficientFunds,
    SignatureRejected,
    Unauthorized,
)

__all__ = ["MESSAGES", "RevertDecoder", "decode_revert"]

MESSAGES: dict[str, str] = {
    # MeshToken and OpenZeppelin ERC-20
    "NotMinter": "{caller} is not an authorised minter",
    "ERC20ExceededCap": "token cap exceeded: supply would be {increasedSupply}, cap is {cap}",
    "ERC20InsufficientBalance": (
        "insufficient token balance: {sender} has {balance}, needs {needed}"
    ),
    "ERC20InsufficientAllowance": (
        "insufficient token allowance: {spender} may spend {allowance}, needs {needed}"
    ),
    "ERC20InvalidApprover": "{approver} cannot approve token spending",
    "ERC20InvalidCap": "token cap {cap} is invalid",
    "ERC20InvalidReceiver": "{receiver} cannot receive tokens",
    "ERC20InvalidSender": "{sender} cannot send tokens",
    "ERC20InvalidSpender": "{spender} cannot be approved to spend tokens",
    "SafeERC20FailedOperation": "the token at {token} refused the transfer",
    "OwnableUnauthorizedAccount": "{account} is not the contract owner",
    "OwnableInvalidOwner": "{owner} cannot own the contract",
    # MeshController
    "InvalidOracle": "{oracle} cannot be an oracle",
    "OracleAlreadyAdded": "{oracle} is already an oracle",
    "UnknownOracle": "{oracle} is not an oracle",
    "InvalidThreshold": "threshold {threshold} is invalid with {oracleCount} oracles",
    "NotEnoughSignatures": "{given} oracle signatures given, {required} required",
    "InvalidSignature": "signature {index} is malformed",
    "SignerNotOracle": "signature {index} was made by {signer}, which is not an oracle",
    "DuplicateSigner": "signature {index} repeats oracle {signer}",
    # MeshLicense and OpenZeppelin ERC-721
    "SaleClosed": "licenses are not for sale",
    "NotLicenseOwner": "{caller} does not own license {licenseId}",
    "InvalidNodeAddress": "{node} is not a valid node address",
    "LicenseAlreadyLinked": "license {licenseId} is already linked to node {node}",
    "NodeAlreadyLinked": "node {node} is already linked to license {licenseId}",
    "LicenseNotLinked": "license {licenseId} is not linked to a node",
    "NodeConsentInvalid": "the link signature is not by node {node} (signed by {signer})",
    "LicenseIsLinked": "license {licenseId} is linked to node {node}; unlink it first",
    "ERC721NonexistentToken": "license {tokenId} does not exist",
    "ERC721InsufficientApproval": "{operator} may not transfer license {tokenId}",
    "ERC721IncorrectOwner": "{sender} is not the owner of license {tokenId} ({owner} is)",
    "ERC721InvalidApprover": "{approver} cannot approve license transfers",
    "ERC721InvalidOperator": "{operator} cannot operate licenses",
    "ERC721InvalidOwner": "{owner} cannot own licenses",
    "ERC721InvalidReceiver": "{receiver} cannot receive licenses",
    "ERC721InvalidSender": "{sender} cannot send licenses",
    "ERC721OutOfBoundsIndex": "{owner} has no license at index {index}",
    "ERC721EnumerableForbiddenBatchMint": "licenses cannot be minted in batches",
    # MeshRewards
    "InvalidEpochLength": "the epoch length must be above zero",
    "GenesisInFuture": "genesis {genesis} is after the current time {timestamp}",
    "NoEpochs": "a claim needs at least one epoch",
    "LengthMismatch": "{0} items do not match {1} values",
    "AvailabilityOutOfRange": "availability {availability} for epoch {epoch} is above 255",
    "EpochNotEnded": "epoch {epoch} has not ended (current epoch is {currentEpoch})",
    "EpochBeforeLink": (
        "epoch {epoch} is before license {licenseId} was linked (epoch {linkEpoch})"
    ),
    "EpochAlreadyClaimed": "epoch {epoch} already claimed for license {licenseId}",
    # MeshEscrow
    "ZeroPrice": "a job's price must be above zero",
    "DeadlineInPast": "deadline {deadline} is not after the current time {timestamp}",
    "UnknownJob": "job {jobId} does not exist",
    "JobNotOpen": "job {jobId} is no longer open ({status})",
    "NotJobClient": "only the client of job {jobId} may do this, not {caller}",
    "JobNotExpired": "job {jobId} has not expired (deadline {deadline})",
    "StaleAttestation": "attestation round {round} of job {jobId} is stale (expected {expected})",
    "AttestationExceedsEscrow": (
        "attestation of {requested} exceeds the {available} left in escrow for job {jobId}"
    ),
    "NothingToWithdraw": "node {node} has nothing attested to withdraw from job {jobId}",
    # Solidity built-ins
    "Error": "{0}",
    "Panic": "panic {0:#04x}: {meaning}",
}

_KINDS: dict[str, type[ContractRevert]] = {
    "NotMinter": Unauthorized,
    "OwnableUnauthorizedAccount": Unauthorized,
    "NotLicenseOwner": Unauthorized,
    "NotJobClient": Unauthorized,
    "ERC721InsufficientApproval": Unauthorized,
    "NotEnoughSignatures": SignatureRejected,
    "InvalidSignature": SignatureRejected,
    "SignerNotOracle": SignatureRejected,
    "DuplicateSigner": SignatureRejected,
    "NodeConsentInvalid": SignatureRejected,
    "EpochAlreadyClaimed": AlreadyClaimed,
    "ERC20InsufficientBalance": InsufficientFunds,
    "ERC20InsufficientAllowance": InsufficientFunds,
    "ERC20ExceededCap": CapExceeded,
}

_PANICS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}
_JOB_STATUS = ("None", "Open", "Completed", "Cancelled", "Expired")


class _ErrorSpec:
    __slots__ = ("name", "names", "types")

    def __init__(self, name: str, names: list[str], types: list[str]) -> None:
        self.name, self.names, self.types = name, names, types


class RevertDecoder:
    """Selector → error definition, built from ABIs; decodes raw revert data."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._specs: dict[bytes, _ErrorSpec] = {
            function_signature_to_4byte_selector("Error(string)"): _ErrorSpec(
                "Error", ["0"], ["string"]
            ),
            function_signature_to_4byte_selector("Panic(uint256)"): _ErrorSpec(
                "Panic", ["0"], ["uint256"]
            ),
        }
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(arg) for arg in item["inputs"]]
                names = [arg["name"] or str(i) for i, arg in enumerate(item["inputs"])]
                selector = function_signature_to_4byte_selector(
                    f"{item['name']}({','.join(types)})"
                )
                self._specs[selector] = _ErrorSpec(item["name"], names, types)

    def decode(self, data: bytes | str | None) -> ContractRevert:
        """The ``ContractRevert`` (or subclass) for revert ``data``; never raises itself."""
        raw = _as_bytes(data)
        spec = self._specs.get(raw[:4]) if len(raw) >= 4 else None
        if spec is None:
            detail = raw.hex() if raw else "no data"
            return ContractRevert(f"reverted without a known error ({detail})", "", {}, raw)
        try:
            values = abi_decode(spec.types, raw[4:])
        except (DecodingError, OverflowError) as exc:
            return ContractRevert(f"{spec.name}: undecodable arguments ({exc})", "", {}, raw)
        args = {
            name: _readable(value, abi_type)
            for name, value, abi_type in zip(spec.names, values, spec.types, strict=True)
        }
        return _KINDS.get(spec.name, ContractRevert)(
            _message(spec.name, args), spec.name, args, raw
        )


def _abi_type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in arg["components"])
        return f"({inner}){arg['type'][5:]}"
    return str(arg["type"])


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith(("0x", "0X")) else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _readable(value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    return value


def _message(name: str, args: dict[str, Any]) -> str:
    template = MESSAGES.get(name)
    fields = dict(args)
    if name == "Panic":
        fields["meaning"] = _PANICS.get(args["0"], "unknown panic code")
    if name == "JobNotOpen" and isinstance(args.get("status"), int):
        status = args["status"]
        fields["status"] = _JOB_STATUS[status] if status < len(_JOB_STATUS) else status
    if template is None:
        inner = ", ".join(f"{k}={v}" for k, v in args.items())
        return f"{name}({inner})"
    return template.format(*args.values(), **fields)


@functools.cache
def _default_decoder() -> RevertDecoder:
    return RevertDecoder(all_abis())


def decode_revert(data: bytes | str | None) -> ContractRevert:
    """Decode with every MeshOps contract's errors."""
    return _default_decoder().decode(data)
