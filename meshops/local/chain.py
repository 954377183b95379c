"""The local network's chain: start the embedded one (or use a URL), deploy, fund, link.

``meshops up`` starts the chain process together with the broker, starts the nodes with
the epoch clock and oracle set already decided (so nothing waits for the chain), and sets
the token layer up once the nodes run:

* the contracts, deployed by the first dev account (``DEV_KEYS[0]``; a dev chain only),
  with every node of the network an oracle and a majority threshold;
* the local user's client key gets ether and tokens, and one licence per node, each linked
  to its node with the node's consent signature; the nodes get ether for gas;
* ``HOME/chain/deployment.json``, which the oracle nodes and ``meshops rewards`` read.

The embedded chain starts its clock ``BEHIND_S`` seconds in the past and is brought back to
the wall clock after the set-up: one block per transaction would otherwise push chain time
ahead of the oracles' clocks, and no epoch before a licence's link can be claimed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshops.errors import ConfigError, MeshOpsError
from meshops.protocol import NodeKey

__all__ = ["BEHIND_S", "ChainPlan", "deployment_path", "set_up_chain"]

log = logging.getLogger(__name__)

BEHIND_S = 60
CLIENT_ETH = 100 * 10**18
NODE_ETH = 10 * 10**18
CLIENT_TOKENS = 10_000 * 10**18


def deployment_path(home: Path) -> Path:
    return home / "chain" / "deployment.json"


def majority(count: int) -> int:
    return count // 2 + 1


@dataclass(frozen=True)
class ChainPlan:
    """What the nodes must know before the chain is deployed."""

    url: str
    embedded: bool
    genesis: int
    epoch_seconds: int
    oracles: list[str]
    threshold: int

    @property
    def heartbeat_interval_s(self) -> float:
        """Short epochs need more than one heartbeat slot each."""
        return round(min(5.0, max(self.epoch_seconds / 5, 0.5)), 3)


def set_up_chain(
    plan: ChainPlan, home: Path, client: NodeKey, nodes: Sequence[NodeKey], deadline: float
) -> Path:
    """Deploy and fund as described above; returns the deployment record's path."""
    from meshops.chain import DEV_KEYS, ChainClient, TokenConfig, TokenLayer, deploy
    from meshops.chain.errors import ChainUnavailable

    owner = ChainClient(plan.url, DEV_KEYS[0], receipt_timeout=30.0)
    while True:
        try:
            owner.chain_id  # noqa: B018 - the first request: is the chain up?
            break
        except ChainUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        config = TokenConfig(
            oracles=plan.oracles,
            threshold=plan.threshold,
            epoch_length=plan.epoch_seconds,
            genesis=plan.genesis,
        )
        layer = TokenLayer(owner, deploy(owner, config))
        user = layer.as_account(client)
        owner.send_eth(user.address, CLIENT_ETH)
        ids = [layer.licenses.mint(user.address) for _ in nodes]
        for license_id, node in zip(ids, nodes, strict=True):
            user.licenses.link(license_id, node)
        for node in nodes:
            owner.send_eth(node.eth_address, NODE_ETH)
        layer.token.transfer(user.address, CLIENT_TOKENS)
        if plan.embedded:
            owner.rpc("meshops_resetClock", [])
            owner.rpc("evm_mine", [])
    except MeshOpsError as exc:
        raise ConfigError(f"the chain at {plan.url} could not be set up: {exc}") from exc
    path = layer.deployment.save(deployment_path(home))
    log.info("token layer deployed on %s: %s", plan.url, path)
    return path


def chain_head_time(url: str) -> int:
    """The latest block's timestamp of the chain at ``url`` (ConfigError if unreachable)."""
    from meshops.chain import DEV_KEYS, ChainClient

    try:
        return ChainClient(url, DEV_KEYS[0], request_timeout=5.0).block_timestamp()
    except MeshOpsError as exc:
        raise ConfigError(f"--chain {url}: {exc}") from exc
