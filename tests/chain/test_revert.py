"""Revert data → ContractRevert with a sentence, for every error the contracts can raise."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from meshops.chain import AlreadyClaimed, ContractRevert, decode_revert
from meshops.chain.compiled import all_abis
from meshops.chain.revert import MESSAGES


def _data(signature: str, types: list[str], values: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def test_the_issue_example_reads_as_promised() -> None:
    data = _data("EpochAlreadyClaimed(uint256,uint256)", ["uint256", "uint256"], [3, 12])
    error = decode_revert("0x" + data.hex())
    assert isinstance(error, AlreadyClaimed)
    assert str(error) == "epoch 12 already claimed for license 3"
    assert (error.error, error.error_args, error.data) == (
        "EpochAlreadyClaimed",
        {"licenseId": 3, "epoch": 12},
        data,
    )


def test_every_contract_error_has_a_sentence() -> None:
    names = {item["name"] for abi in all_abis() for item in abi if item["type"] == "error"}
    assert names - set(MESSAGES) == set()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_data("Error(string)", ["string"], ["plain require"]), "plain require"),
        (_data("Panic(uint256)", ["uint256"], [0x11]), "panic 0x11: arithmetic overflow"),
        (bytes.fromhex("deadbeef"), "reverted without a known error (deadbeef)"),
        (b"", "reverted without a known error (no data)"),
        (function_signature_to_4byte_selector("NoEpochs()"), "a claim needs at least one epoch"),
    ],
)
def test_builtin_unknown_and_empty_reverts(data: bytes, message: str) -> None:
    error = decode_revert(data)
    assert type(error) is ContractRevert
    assert str(error).startswith(message)


def test_truncated_arguments_do_not_crash_the_decoder() -> None:
    data = _data("EpochAlreadyClaimed(uint256,uint256)", ["uint256", "uint256"], [3, 12])
    assert "undecodable arguments" in str(decode_revert(data[:20]))
