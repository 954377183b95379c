"""Availability rewards: the epoch clock and claims signed by the oracles."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from web3.logs import DISCARD

from meshops.chain.client import ChainClient
from meshops.chain.errors import TransactionFailed
from meshops.chain.oracle import MAX_AVAILABILITY, EpochClock

__all__ = ["Rewards"]


class Rewards:
    """The rewards contract as seen by a licence owner."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("MeshRewards", address)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @functools.cached_property
    def clock(self) -> EpochClock:
        """The contract's epoch numbering (immutable, so read once)."""
        genesis = int(self.client.call(self.contract.functions.genesis()))
        length = int(self.client.call(self.contract.functions.epochLength()))
        return EpochClock(genesis, length)

    @functools.cached_property
    def reward_per_epoch(self) -> int:
        return int(self.client.call(self.contract.functions.rewardPerEpoch()))

    def current_epoch(self) -> int:
        """The epoch of the chain's latest block."""
        return int(self.client.call(self.contract.functions.currentEpoch()))

    def is_claimed(self, license_id: int, epoch: int) -> bool:
        return bool(self.client.call(self.contract.functions.isClaimed(license_id, epoch)))

    def reward_for(self, availabilities: Sequence[int]) -> int:
        """What a claim of these availabilities pays, computed as the contract does."""
        return self.reward_per_epoch * sum(availabilities) // MAX_AVAILABILITY

    def claim(
        self,
        license_id: int,
        epochs: Sequence[int],
        availabilities: Sequence[int],
        signatures: Sequence[bytes],
    ) -> int:
        """Claim ``epochs`` for the caller's linked licence; returns the tokens minted."""
        fn = self.contract.functions.claim(
            license_id, list(epochs), list(availabilities), list(signatures)
        )
        receipt = self.client.send(fn, label="rewards claim")
        for event in self.contract.events.RewardsClaimed().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["amount"])
        raise TransactionFailed("the claim emitted no RewardsClaimed event")
