"""Constants and the ``Net`` bundle shared by the chain tests."""

from __future__ import annotations

from dataclasses import dataclass

from meshops.chain import DEV_KEYS, AnvilChain, EmbeddedChain, TokenLayer
from meshops.chain.deployment import TOKEN
from meshops.protocol.keys import NodeKey

EPOCH = 60
PRICE = 1_000 * TOKEN
REWARD = 10 * TOKEN
CAP = 1_000_000 * TOKEN
SUPPLY = 500_000 * TOKEN
ORACLE_KEYS = DEV_KEYS[1:4]
THRESHOLD = 2


@dataclass
class Net:
    """A fresh deployment and the people using it."""

    chain: EmbeddedChain | AnvilChain
    owner: TokenLayer  # deployer: holds the supply, mints licences
    alice: TokenLayer  # licence owner / job client
    bob: TokenLayer  # another user
    node: NodeKey  # a node's own key (no ether needed to be linked)
    oracle_keys: tuple[bytes, ...]

    @property
    def chain_id(self) -> int:
        return self.owner.client.chain_id

    def advance(self, seconds: int) -> None:
        """Move the chain's clock (``evm_increaseTime`` + ``evm_mine``, on both chains)."""
        self.owner.client.rpc("evm_increaseTime", [seconds])
        self.owner.client.rpc("evm_mine", [])

    def now(self) -> int:
        return self.owner.client.block_timestamp()
