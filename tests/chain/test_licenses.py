"""Deployment, the capped token and node licences, on both chains."""

from __future__ import annotations

import pytest
from eth_account import Account

from meshops.chain import (
    CapExceeded,
    ContractRevert,
    InsufficientFunds,
    SignatureRejected,
    Unauthorized,
)
from meshops.chain.account import as_account, sign_digest
from meshops.chain.messages import link_digest
from meshops.protocol.keys import NodeKey

from .helpers import CAP, PRICE, SUPPLY, THRESHOLD, Net


def test_deployment_wires_the_contracts(net: Net) -> None:
    o = net.owner
    assert o.token.cap() == CAP
    assert o.token.total_supply() == SUPPLY
    assert o.threshold() == THRESHOLD
    assert o.oracles() == [Account.from_key(k).address for k in net.oracle_keys]
    assert o.licenses.price() == PRICE
    assert o.rewards.clock.length == 60
    assert o.client.call(o.token.contract.functions.isMinter(o.deployment.rewards))
    for address in (o.deployment.token, o.deployment.license, o.deployment.escrow):
        assert len(o.client.w3.eth.get_code(address)) > 0


def test_only_authorised_minters_mint_and_the_cap_holds(net: Net) -> None:
    with pytest.raises(Unauthorized, match="is not an authorised minter"):
        net.alice.token.mint(net.alice.address, 1)
    net.owner.client.send(net.owner.token.contract.functions.setMinter(net.owner.address, True))
    room = CAP - SUPPLY
    net.owner.token.mint(net.bob.address, room)
    assert net.owner.token.total_supply() == CAP
    with pytest.raises(CapExceeded, match=f"supply would be {CAP + 1}, cap is {CAP}") as caught:
        net.owner.token.mint(net.bob.address, 1)
    assert caught.value.error == "ERC20ExceededCap"
    assert caught.value.error_args == {"increasedSupply": CAP + 1, "cap": CAP}


def test_buying_a_license_burns_its_price(net: Net) -> None:
    before, supply = net.alice.token.balance_of(), net.owner.token.total_supply()
    license_id = net.alice.licenses.buy()
    assert license_id == 1
    assert net.alice.token.balance_of() == before - PRICE
    assert net.owner.token.total_supply() == supply - PRICE
    assert net.alice.licenses.owned_by() == [1]
    assert net.owner.licenses.info(1).owner == net.alice.address


def test_buying_without_tokens_is_refused_clearly(net: Net) -> None:
    net.bob.token.approve(net.owner.deployment.license, PRICE)
    with pytest.raises(InsufficientFunds, match=f"{net.bob.address} has 0, needs {PRICE}"):
        net.bob.licenses.buy()


def test_owner_mints_licenses_others_cannot(net: Net) -> None:
    assert net.owner.licenses.mint(net.bob.address) == 1
    assert net.bob.licenses.owned_by() == [1]
    with pytest.raises(Unauthorized, match="is not the contract owner"):
        net.alice.licenses.mint(net.alice.address)


def test_link_and_unlink_with_the_nodes_consent(net: Net) -> None:
    license_id = net.alice.licenses.buy()
    net.alice.licenses.link(license_id, net.node)
    assert net.alice.licenses.node_of(license_id) == net.node.eth_address
    assert net.alice.licenses.license_of(net.node.eth_address) == license_id
    assert net.alice.licenses.info(license_id).linked_at > 0
    net.alice.licenses.unlink(license_id)
    assert net.alice.licenses.node_of(license_id) is None
    assert net.alice.licenses.license_of(net.node.eth_address) is None
    net.alice.licenses.link(license_id, net.node)  # a fresh consent (new nonce) works again


def test_one_node_per_license_and_one_license_per_node(net: Net) -> None:
    first, second = net.alice.licenses.buy(), net.alice.licenses.buy()
    net.alice.licenses.link(first, net.node)
    with pytest.raises(ContractRevert, match=f"license {first} is already linked to node"):
        net.alice.licenses.link(first, NodeKey.generate())
    pattern = f"node {net.node.eth_address} is already linked to license {first}"
    with pytest.raises(ContractRevert, match=pattern):
        net.alice.licenses.link(second, net.node)


def test_linking_someone_elses_node_needs_its_signature(net: Net) -> None:
    license_id = net.alice.licenses.buy()
    licenses = net.alice.licenses
    victim = net.node.eth_address
    nonce = 0
    digest = link_digest(net.chain_id, licenses.address, license_id, victim, nonce)
    forged = sign_digest(net.alice.client.account, digest)  # alice signs, pretending
    fn = licenses.contract.functions.link(license_id, victim, forged)
    with pytest.raises(SignatureRejected, match=f"not by node {victim}"):
        net.alice.client.send(fn)


def test_old_link_consent_cannot_be_replayed(net: Net) -> None:
    license_id = net.alice.licenses.buy()
    licenses = net.alice.licenses
    node = net.node.eth_address
    digest = link_digest(net.chain_id, licenses.address, license_id, node, 0)
    consent = sign_digest(net.node, digest)
    net.alice.client.send(licenses.contract.functions.link(license_id, node, consent))
    licenses.unlink(license_id)
    with pytest.raises(SignatureRejected):
        net.alice.client.send(licenses.contract.functions.link(license_id, node, consent))


def test_link_digest_matches_the_contract(net: Net) -> None:
    licenses = net.alice.licenses
    node = net.node.eth_address
    on_chain = net.alice.client.call(licenses.contract.functions.linkDigest(7, node))
    assert bytes(on_chain) == link_digest(net.chain_id, licenses.address, 7, node, 0)


def test_only_the_license_owner_links_or_unlinks(net: Net) -> None:
    license_id = net.alice.licenses.buy()
    with pytest.raises(Unauthorized, match=f"does not own license {license_id}"):
        net.bob.licenses.link(license_id, net.node)
    net.alice.licenses.link(license_id, net.node)
    with pytest.raises(Unauthorized, match=f"does not own license {license_id}"):
        net.bob.licenses.unlink(license_id)
    with pytest.raises(ContractRevert, match="license 99 does not exist"):
        net.bob.licenses.unlink(99)


def test_a_linked_license_cannot_be_transferred(net: Net) -> None:
    license_id = net.alice.licenses.buy()
    net.alice.licenses.link(license_id, net.node)
    transfer = net.alice.licenses.contract.functions.transferFrom(
        net.alice.address, net.bob.address, license_id
    )
    with pytest.raises(ContractRevert, match="unlink it first"):
        net.alice.client.send(transfer)
    net.alice.licenses.unlink(license_id)
    net.alice.client.send(transfer)
    assert net.bob.licenses.owned_by() == [license_id]


def test_node_key_is_the_eth_account() -> None:
    key = NodeKey.generate()
    assert as_account(key).address == key.eth_address
