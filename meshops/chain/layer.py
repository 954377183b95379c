"""The whole token layer of one deployment, as seen by one account."""

from __future__ import annotations

from meshops.chain.account import KeyLike
from meshops.chain.client import ChainClient
from meshops.chain.deployment import Deployment
from meshops.chain.errors import ArtifactError
from meshops.chain.escrow import Escrow
from meshops.chain.licenses import Licenses
from meshops.chain.rewards import Rewards
from meshops.chain.token import Token

__all__ = ["TokenLayer"]


class TokenLayer:
    """``token``, ``licenses``, ``rewards`` and ``escrow`` for ``client``'s account."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        if client.chain_id != deployment.chain_id:
            raise ArtifactError(
                f"the deployment is on chain {deployment.chain_id}, "
                f"the node at {client.url} is chain {client.chain_id}"
            )
        self.client = client
        self.deployment = deployment
        self.token = Token(client, deployment.token)
        self.licenses = Licenses(client, deployment.license, self.token)
        self.rewards = Rewards(client, deployment.rewards)
        self.escrow = Escrow(client, deployment.escrow, self.token)
        self.controller = client.contract("MeshController", deployment.controller)

    @property
    def address(self) -> str:
        return self.client.address

    def as_account(self, key: KeyLike) -> TokenLayer:
        """The same deployment seen by another account (a node, a client, an oracle)."""
        return TokenLayer(self.client.with_key(key), self.deployment)

    def oracles(self) -> list[str]:
        return [str(o) for o in self.client.call(self.controller.functions.oracles())]

    def threshold(self) -> int:
        return int(self.client.call(self.controller.functions.threshold()))
