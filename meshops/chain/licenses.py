"""Node licences (ERC-721): buy, mint, link to a node with its consent, unlink, list."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from meshops.chain.account import KeyLike, as_account, sign_digest
from meshops.chain.client import ChainClient
from meshops.chain.errors import TransactionFailed
from meshops.chain.messages import link_digest
from meshops.chain.token import Token

__all__ = ["LicenseInfo", "Licenses"]

_ZERO = "0x" + "00" * 20


@dataclass(frozen=True)
class LicenseInfo:
    """One licence: who owns it, which node it is linked to (None) and since when."""

    license_id: int
    owner: str
    node: str | None
    linked_at: int


class Licenses:
    """The licence contract as seen by one account (the licence owner's wallet)."""

    def __init__(self, client: ChainClient, address: str, token: Token) -> None:
        self.client = client
        self.token = token
        self.contract = client.contract("MeshLicense", address)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def price(self) -> int:
        return int(self.client.call(self.contract.functions.price()))

    def buy(self) -> int:
        """Buy one licence (approving the burn of its price first); returns its id."""
        self.token.ensure_allowance(self.address, self.price())
        receipt = self.client.send(self.contract.functions.buy(), label="license buy")
        return self._minted_id(receipt)

    def mint(self, to: str) -> int:
        """Mint a licence to ``to`` (contract owner only); returns its id."""
        fn = self.contract.functions.mint(Web3.to_checksum_address(to))
        return self._minted_id(self.client.send(fn, label="license mint"))

    def link(self, license_id: int, node_key: KeyLike) -> TxReceipt:
        """Link ``license_id`` to the node whose key is ``node_key``; the node signs consent.

        The licence owner sends the transaction; the node's key only signs the link digest
        (it needs no ether). Owner and node may be the same key.
        """
        node = as_account(node_key).address
        nonce = int(self.client.call(self.contract.functions.linkNonce(node)))
        digest = link_digest(self.client.chain_id, self.address, license_id, node, nonce)
        fn = self.contract.functions.link(license_id, node, sign_digest(node_key, digest))
        return self.client.send(fn, label="license link")

    def unlink(self, license_id: int) -> TxReceipt:
        return self.client.send(self.contract.functions.unlink(license_id), label="license unlink")

    def node_of(self, license_id: int) -> str | None:
        node = str(self.client.call(self.contract.functions.nodeOf(license_id)))
        return None if int(node, 16) == 0 else node

    def license_of(self, node: str) -> int | None:
        """The licence ``node`` is linked to, or None."""
        found = self.client.call(self.contract.functions.licenseOf(Web3.to_checksum_address(node)))
        return int(found) or None

    def owned_by(self, owner: str | None = None) -> list[int]:
        """Ids of the licences ``owner`` (default: this account) holds."""
        who = Web3.to_checksum_address(owner or self.client.address)
        count = int(self.client.call(self.contract.functions.balanceOf(who)))
        fn = self.contract.functions.tokenOfOwnerByIndex
        return [int(self.client.call(fn(who, i))) for i in range(count)]

    def info(self, license_id: int) -> LicenseInfo:
        owner = str(self.client.call(self.contract.functions.ownerOf(license_id)))
        linked_at = int(self.client.call(self.contract.functions.linkedAt(license_id)))
        return LicenseInfo(license_id, owner, self.node_of(license_id), linked_at)

    def _minted_id(self, receipt: TxReceipt) -> int:
        for event in self.contract.events.Transfer().process_receipt(receipt, errors=DISCARD):
            if event["args"]["from"] == _ZERO:
                return int(event["args"]["tokenId"])
        raise TransactionFailed("the licence transaction minted no licence")
