"""Availability rewards: paid in proportion, once per epoch, only with k oracle signatures."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pytest

from meshops.chain import (
    AlreadyClaimed,
    ContractRevert,
    SignatureRejected,
    Unauthorized,
    sign_claim,
    verify_claim,
)
from meshops.chain.messages import claim_digest
from meshops.protocol.keys import NodeKey

from .helpers import EPOCH, REWARD, THRESHOLD, Net


def signatures(
    net: Net,
    node: str,
    epochs: Sequence[int],
    avails: Sequence[int],
    keys: Sequence[bytes] | None = None,
) -> list[bytes]:
    rewards = net.owner.deployment.rewards
    chosen = net.oracle_keys[:THRESHOLD] if keys is None else keys
    return [sign_claim(k, net.chain_id, rewards, node, epochs, avails) for k in chosen]


@pytest.fixture
def linked(net: Net) -> int:
    """Alice's licence, linked to ``net.node`` in epoch 0; the chain is then in epoch 3."""
    license_id = net.alice.licenses.buy()
    net.alice.licenses.link(license_id, net.node)
    net.advance(3 * EPOCH)
    assert net.alice.rewards.current_epoch() >= 3
    return license_id


def claim(net: Net, license_id: int, epochs: list[int], avails: list[int], **kw: object) -> int:
    sigs = kw.pop("sigs", None) or signatures(net, net.node.eth_address, epochs, avails)
    who = kw.pop("who", net.alice)
    return who.rewards.claim(license_id, epochs, avails, sigs)  # type: ignore[union-attr]


def test_claim_pays_in_proportion_to_availability(net: Net, linked: int) -> None:
    before = net.alice.token.balance_of()
    paid = claim(net, linked, [0, 1, 2], [255, 128, 0])
    assert paid == REWARD * (255 + 128 + 0) // 255
    assert net.alice.token.balance_of() == before + paid
    assert all(net.alice.rewards.is_claimed(linked, e) for e in (0, 1, 2))
    assert not net.alice.rewards.is_claimed(linked, 3)


def test_an_epoch_is_paid_once(net: Net, linked: int) -> None:
    claim(net, linked, [0, 1], [255, 255])
    with pytest.raises(AlreadyClaimed, match=f"epoch 1 already claimed for license {linked}"):
        claim(net, linked, [1], [255])
    with pytest.raises(AlreadyClaimed, match=f"epoch 2 already claimed for license {linked}"):
        claim(net, linked, [2, 2], [255, 255])  # the same epoch twice in one claim


def test_relinking_the_node_does_not_pay_an_epoch_twice(net: Net, linked: int) -> None:
    claim(net, linked, [1], [255])
    net.alice.licenses.unlink(linked)
    other = net.alice.licenses.buy()
    net.alice.licenses.link(other, net.node)
    net.advance(EPOCH)
    with pytest.raises(ContractRevert, match=r"epoch 1 is before license \d+ was linked"):
        claim(net, other, [1], [255])


def test_too_few_signatures_are_refused(net: Net, linked: int) -> None:
    one = signatures(net, net.node.eth_address, [0], [255], keys=net.oracle_keys[:1])
    with pytest.raises(SignatureRejected, match="1 oracle signatures given, 2 required"):
        claim(net, linked, [0], [255], sigs=one)


def test_duplicated_signatures_are_refused(net: Net, linked: int) -> None:
    sig = signatures(net, net.node.eth_address, [0], [255])[0]
    with pytest.raises(SignatureRejected, match="signature 1 repeats oracle") as caught:
        claim(net, linked, [0], [255], sigs=[sig, sig])
    assert caught.value.error == "DuplicateSigner"


def test_forged_signatures_are_refused(net: Net, linked: int) -> None:
    signed_for_full = signatures(net, net.node.eth_address, [0], [255])
    with pytest.raises(SignatureRejected, match="signature 0 was made by 0x"):
        claim(net, linked, [0], [100], sigs=signed_for_full)  # values changed after signing


def test_non_oracle_signatures_are_refused(net: Net, linked: int) -> None:
    stranger = NodeKey.generate()
    keys = [net.oracle_keys[0], stranger]
    sigs = signatures(net, net.node.eth_address, [0], [255], keys=keys)  # type: ignore[arg-type]
    pattern = f"signature 1 was made by {stranger.eth_address}, which is not an oracle"
    with pytest.raises(SignatureRejected, match=pattern):
        claim(net, linked, [0], [255], sigs=sigs)


def test_malformed_signatures_are_refused(net: Net, linked: int) -> None:
    good = signatures(net, net.node.eth_address, [0], [255])
    with pytest.raises(SignatureRejected, match="signature 0 is malformed"):
        claim(net, linked, [0], [255], sigs=[good[0][:64], good[1]])


def test_signatures_for_another_deployment_are_refused(net: Net, linked: int) -> None:
    elsewhere = [
        sign_claim(k, net.chain_id, net.owner.deployment.escrow, net.node.eth_address, [0], [255])
        for k in net.oracle_keys[:THRESHOLD]
    ]
    with pytest.raises(SignatureRejected, match="which is not an oracle"):
        claim(net, linked, [0], [255], sigs=elsewhere)


def test_an_unlinked_license_cannot_claim(net: Net, linked: int) -> None:
    net.alice.licenses.unlink(linked)
    with pytest.raises(ContractRevert, match=f"license {linked} is not linked to a node"):
        claim(net, linked, [0], [255])


def test_a_foreign_license_cannot_claim(net: Net, linked: int) -> None:
    with pytest.raises(Unauthorized, match=f"{net.bob.address} does not own license {linked}"):
        claim(net, linked, [0], [255], who=net.bob)


def test_unfinished_epochs_and_bad_values_are_refused(net: Net, linked: int) -> None:
    current = net.alice.rewards.current_epoch()
    with pytest.raises(ContractRevert, match=f"epoch {current + 1} has not ended"):
        claim(net, linked, [current + 1], [255])
    with pytest.raises(ContractRevert, match="availability 256 for epoch 0 is above 255"):
        claim(net, linked, [0], [256])
    with pytest.raises(ContractRevert, match="a claim needs at least one epoch"):
        claim(net, linked, [], [], sigs=signatures(net, net.node.eth_address, [], []))


def test_claim_digest_and_offchain_verification_match_the_contract(net: Net, linked: int) -> None:
    rewards = net.alice.rewards
    node, epochs, avails = net.node.eth_address, [0, 1], [17, 255]
    view = rewards.contract.functions.claimDigest(node, epochs, avails)
    local = claim_digest(net.chain_id, rewards.address, node, epochs, avails)
    assert bytes(net.alice.client.call(view)) == local
    sigs = signatures(net, node, epochs, avails, keys=net.oracle_keys)
    oracles = net.owner.oracles()
    check = functools.partial(
        verify_claim,
        oracles=oracles,
        threshold=THRESHOLD,
        chain_id=net.chain_id,
        rewards=rewards.address,
        node=node,
        epochs=epochs,
        availabilities=avails,
    )
    assert check(sigs) == oracles
    with pytest.raises(SignatureRejected, match="repeats oracle"):
        check(sigs[:1] * 2)
    with pytest.raises(SignatureRejected, match="1 oracle signatures given, 2 required"):
        check(sigs[:1])
    assert claim(net, linked, epochs, avails, sigs=sigs) == REWARD * (17 + 255) // 255
