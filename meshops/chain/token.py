"""The MeshOps ERC-20 as seen by one account."""

from __future__ import annotations

from web3 import Web3
from web3.types import TxReceipt

from meshops.chain.client import ChainClient

__all__ = ["Token"]


class Token:
    """Balances, transfers and allowances of the capped MeshOps token."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("MeshToken", address)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def balance_of(self, account: str | None = None) -> int:
        """Smallest units held by ``account`` (default: this client's account)."""
        who = Web3.to_checksum_address(account or self.client.address)
        return int(self.client.call(self.contract.functions.balanceOf(who)))

    def total_supply(self) -> int:
        return int(self.client.call(self.contract.functions.totalSupply()))

    def cap(self) -> int:
        return int(self.client.call(self.contract.functions.cap()))

    def allowance(self, owner: str, spender: str) -> int:
        fn = self.contract.functions.allowance(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)
        )
        return int(self.client.call(fn))

    def transfer(self, to: str, amount: int) -> TxReceipt:
        fn = self.contract.functions.transfer(Web3.to_checksum_address(to), amount)
        return self.client.send(fn, label="token transfer")

    def approve(self, spender: str, amount: int) -> TxReceipt:
        fn = self.contract.functions.approve(Web3.to_checksum_address(spender), amount)
        return self.client.send(fn, label="token approve")

    def ensure_allowance(self, spender: str, amount: int) -> None:
        """Approve ``spender`` for ``amount`` unless it may already spend that much."""
        if self.allowance(self.client.address, spender) < amount:
            self.approve(spender, amount)

    def mint(self, to: str, amount: int) -> TxReceipt:
        """Mint (only authorised minter contracts may; anyone else gets ``Unauthorized``)."""
        fn = self.contract.functions.mint(Web3.to_checksum_address(to), amount)
        return self.client.send(fn, label="token mint")
