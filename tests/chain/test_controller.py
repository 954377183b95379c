"""The oracle set and threshold: owner-managed, never left unsatisfiable."""

from __future__ import annotations

import pytest

from meshops.chain import ContractRevert, SignatureRejected, Unauthorized, sign_claim
from meshops.protocol.keys import NodeKey

from .helpers import EPOCH, Net


def test_only_the_owner_manages_oracles(net: Net) -> None:
    controller = net.alice.controller.functions
    with pytest.raises(Unauthorized, match=f"{net.alice.address} is not the contract owner"):
        net.alice.client.send(controller.addOracle(net.alice.address))
    with pytest.raises(Unauthorized):
        net.alice.client.send(controller.setThreshold(1))


def test_the_threshold_always_fits_the_oracle_set(net: Net) -> None:
    owner, controller = net.owner.client, net.owner.controller.functions
    with pytest.raises(ContractRevert, match="threshold 0 is invalid with 3 oracles"):
        owner.send(controller.setThreshold(0))
    with pytest.raises(ContractRevert, match="threshold 4 is invalid with 3 oracles"):
        owner.send(controller.setThreshold(4))
    owner.send(controller.setThreshold(3))
    first = net.owner.oracles()[0]
    with pytest.raises(ContractRevert, match="threshold 3 is invalid with 2 oracles"):
        owner.send(controller.removeOracle(first))
    with pytest.raises(ContractRevert, match="is already an oracle"):
        owner.send(controller.addOracle(first))


def test_a_removed_oracle_no_longer_counts_and_a_new_one_does(net: Net) -> None:
    owner, controller = net.owner.client, net.owner.controller.functions
    newcomer = NodeKey.generate()
    removed_key, kept_key = net.oracle_keys[0], net.oracle_keys[1]
    owner.send(controller.removeOracle(net.owner.oracles()[0]))
    owner.send(controller.addOracle(newcomer.eth_address))
    license_id = net.alice.licenses.buy()
    net.alice.licenses.link(license_id, net.node)
    net.advance(2 * EPOCH)

    def sigs(keys: list) -> list[bytes]:
        rewards, node = net.alice.rewards.address, net.node.eth_address
        return [sign_claim(k, net.chain_id, rewards, node, [0], [255]) for k in keys]

    with pytest.raises(SignatureRejected, match="signature 0 was made by .* not an oracle"):
        net.alice.rewards.claim(license_id, [0], [255], sigs([removed_key, kept_key]))
    assert net.alice.rewards.claim(license_id, [0], [255], sigs([newcomer, kept_key])) > 0
