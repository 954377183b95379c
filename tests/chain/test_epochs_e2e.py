"""End to end on the chain: two epochs of heartbeats, oracles agree and sign, owners claim;
a job's price is escrowed, attested, paid and the rest refunded."""

from __future__ import annotations

import random

import pytest
from eth_account import Account

from meshops.chain import JobStatus, agree, availability, sign_attestation, sign_claim
from meshops.chain.deployment import TOKEN
from meshops.protocol.keys import NodeKey

from .helpers import EPOCH, REWARD, THRESHOLD, Net

INTERVAL = 5  # heartbeat period in seconds: 12 slots per 60 s epoch


@pytest.mark.slow
def test_two_epochs_of_availability_are_agreed_signed_and_paid(net: Net) -> None:
    rng = random.Random(7)
    steady, flaky = net.node, NodeKey.generate()
    ids = {}
    for node in (steady, flaky):
        ids[node] = net.alice.licenses.buy()
        net.alice.licenses.link(ids[node], node)
    clock = net.alice.rewards.clock
    first = clock.epoch_at(net.now()) + 1
    epochs = [first, first + 1]
    net.advance(clock.end(epochs[-1]) - net.now() + 1)  # both epochs are over
    assert net.alice.rewards.current_epoch() > epochs[-1]

    # what each node sent: steady every period, flaky only in the first half of each epoch
    sent = {
        steady: [clock.start(e) + INTERVAL * i + 1 for e in epochs for i in range(12)],
        flaky: [clock.start(e) + INTERVAL * i + 1 for e in epochs for i in range(6)],
    }
    oracles = {Account.from_key(k).address: k for k in net.oracle_keys}
    before = net.alice.token.balance_of()
    expected_total = 0
    for node in (steady, flaky):
        agreed = []
        for epoch in epochs:
            # each oracle loses a few heartbeats of its own on the way
            seen = {
                oracle: availability(
                    [t for t in sent[node] if rng.random() > 0.1], clock, epoch, INTERVAL
                )
                for oracle in oracles
            }
            agreed.append(agree(seen, required=THRESHOLD))
        sigs = [
            sign_claim(
                key, net.chain_id, net.alice.rewards.address, node.eth_address, epochs, agreed
            )
            for key in list(oracles.values())[:THRESHOLD]
        ]
        paid = net.alice.rewards.claim(ids[node], epochs, agreed, sigs)
        assert paid == REWARD * sum(agreed) // 255
        expected_total += paid
        if node is steady:
            assert min(agreed) >= 200
        else:
            assert max(agreed) <= 128
    assert net.alice.token.balance_of() == before + expected_total


@pytest.mark.slow
def test_an_escrowed_job_is_attested_paid_and_refunded(net: Net) -> None:
    worker = net.owner.as_account(net.node)
    net.owner.client.send_eth(worker.address, 10**18)
    alice_before = net.alice.token.balance_of()
    job = net.alice.escrow.create_job(50 * TOKEN, net.now() + 10 * EPOCH)
    assert net.alice.token.balance_of() == alice_before - 50 * TOKEN
    nodes, amounts = [worker.address], [35 * TOKEN]
    sigs = [
        sign_attestation(k, net.chain_id, net.alice.escrow.address, job, 0, True, nodes, amounts)
        for k in net.oracle_keys[:THRESHOLD]
    ]
    net.bob.escrow.attest(job, 0, True, nodes, amounts, sigs)
    assert net.alice.escrow.job(job).status == JobStatus.COMPLETED
    assert net.alice.token.balance_of() == alice_before - 35 * TOKEN  # 15 refunded
    assert worker.escrow.withdraw(job) == 35 * TOKEN
    assert worker.token.balance_of() == 35 * TOKEN
