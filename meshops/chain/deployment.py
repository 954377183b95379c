"""Deploy the five MeshOps contracts and remember where they are.

One function deploys and wires the set (the rewards contract becomes the token's only
minter); ``Deployment`` is the small JSON record every process reads to find the contracts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from web3 import Web3

from meshops.chain.client import ChainClient
from meshops.chain.errors import ArtifactError

__all__ = ["Deployment", "TokenConfig", "deploy"]

TOKEN = 10**18
"""One whole token in its smallest unit (18 decimals)."""


@dataclass(frozen=True)
class TokenConfig:
    """Economic parameters of a deployment; the defaults suit a local network."""

    oracles: Sequence[str]
    threshold: int
    name: str = "MeshOps Token"
    symbol: str = "MESH"
    cap: int = 1_000_000_000 * TOKEN
    initial_supply: int = 100_000_000 * TOKEN
    license_price: int = 1_000 * TOKEN
    reward_per_epoch: int = 10 * TOKEN
    epoch_length: int = 86_400
    genesis: int | None = None
    """Start of epoch 0 (unix seconds); None: the latest block's timestamp."""


@dataclass(frozen=True)
class Deployment:
    """Where a deployment lives and the epoch clock its rewards use."""

    chain_id: int
    token: str
    controller: str
    license: str
    rewards: str
    escrow: str
    genesis: int
    epoch_length: int
    gas: dict[str, int] = field(default_factory=dict, compare=False)
    """Gas used by each deployment transaction (informational)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ArtifactError(f"not a MeshOps deployment record: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically, so a reader never sees half a record."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(self.to_json(), "utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        try:
            return cls.from_json(Path(path).read_text("utf-8"))
        except FileNotFoundError as exc:
            raise ArtifactError(f"no deployment record at {path}") from exc


def deploy(client: ChainClient, config: TokenConfig) -> Deployment:
    """Deploy token, controller, licences, rewards and escrow, owned by ``client``'s account."""
    owner = client.address
    gas: dict[str, int] = {}

    def _deploy(name: str, *args: object) -> str:
        contract, receipt = client.deploy(name, *args)
        gas[name] = int(receipt["gasUsed"])
        return str(contract.address)

    genesis = config.genesis if config.genesis is not None else client.block_timestamp()
    oracles = [Web3.to_checksum_address(o) for o in config.oracles]
    token = _deploy(
        "MeshToken", config.name, config.symbol, config.cap, config.initial_supply, owner
    )
    controller = _deploy("MeshController", owner, oracles, config.threshold)
    license_ = _deploy("MeshLicense", token, config.license_price, owner)
    rewards = _deploy(
        "MeshRewards",
        token,
        license_,
        controller,
        genesis,
        config.epoch_length,
        config.reward_per_epoch,
    )
    escrow = _deploy("MeshEscrow", token, controller)
    receipt = client.send(client.contract("MeshToken", token).functions.setMinter(rewards, True))
    gas["MeshToken.setMinter"] = int(receipt["gasUsed"])
    return Deployment(
        chain_id=client.chain_id,
        token=token,
        controller=controller,
        license=license_,
        rewards=rewards,
        escrow=escrow,
        genesis=genesis,
        epoch_length=config.epoch_length,
        gas=gas,
    )
