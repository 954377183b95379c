"""Job escrow: price locked, attested work paid once, the rest refunded; on both chains."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from meshops.chain import (
    ContractRevert,
    JobStatus,
    SignatureRejected,
    TokenLayer,
    Unauthorized,
    sign_attestation,
)
from meshops.chain.deployment import TOKEN
from meshops.chain.messages import attestation_digest
from meshops.chain.oracle import sign_claim

from .helpers import THRESHOLD, Net

JOB_PRICE = 100 * TOKEN


def attestation(
    net: Net,
    job_id: int,
    round_: int,
    final: bool,
    nodes: Sequence[str],
    amounts: Sequence[int],
    keys: Sequence[bytes] | None = None,
) -> list[bytes]:
    escrow = net.owner.deployment.escrow
    chosen = net.oracle_keys[:THRESHOLD] if keys is None else keys
    return [
        sign_attestation(k, net.chain_id, escrow, job_id, round_, final, nodes, amounts)
        for k in chosen
    ]


def attest(net: Net, job_id: int, round_: int, final: bool, work: dict[str, int]) -> None:
    nodes, amounts = list(work), list(work.values())
    sigs = attestation(net, job_id, round_, final, nodes, amounts)
    net.bob.escrow.attest(job_id, round_, final, nodes, amounts, sigs)  # anyone relays


@pytest.fixture
def job(net: Net) -> int:
    """Alice locks JOB_PRICE for a job due in an hour."""
    return net.alice.escrow.create_job(JOB_PRICE, net.now() + 3600)


@pytest.fixture
def worker(net: Net) -> TokenLayer:
    """A node with gas money, so it can withdraw its own pay."""
    net.owner.client.send_eth(net.node.eth_address, 10**18)
    return net.owner.as_account(net.node)


def test_create_locks_the_price(net: Net, job: int) -> None:
    info = net.alice.escrow.job(job)
    assert (info.client, info.status, info.price, info.attested) == (
        net.alice.address,
        JobStatus.OPEN,
        JOB_PRICE,
        0,
    )
    assert net.owner.token.balance_of(net.owner.deployment.escrow) == JOB_PRICE


def test_attested_nodes_are_paid_and_the_rest_refunded(
    net: Net, job: int, worker: TokenLayer
) -> None:
    alice_before = net.alice.token.balance_of()
    attest(net, job, 0, False, {worker.address: 30 * TOKEN, net.bob.address: 10 * TOKEN})
    attest(net, job, 1, True, {worker.address: 20 * TOKEN})
    info = net.alice.escrow.job(job)
    assert (info.status, info.rounds, info.attested) == (JobStatus.COMPLETED, 2, 60 * TOKEN)
    assert net.alice.token.balance_of() == alice_before + 40 * TOKEN  # refund on completion
    assert worker.escrow.withdraw(job) == 50 * TOKEN
    assert worker.token.balance_of() == 50 * TOKEN
    assert net.bob.escrow.withdraw(job) == 10 * TOKEN
    assert net.owner.token.balance_of(net.owner.deployment.escrow) == 0


def test_no_double_payment(net: Net, job: int, worker: TokenLayer) -> None:
    attest(net, job, 0, True, {worker.address: 30 * TOKEN})
    worker.escrow.withdraw(job)
    with pytest.raises(ContractRevert, match=f"nothing attested to withdraw from job {job}"):
        worker.escrow.withdraw(job)
    replay = attestation(net, job, 0, True, [worker.address], [30 * TOKEN])
    with pytest.raises(ContractRevert, match=f"job {job} is no longer open"):
        net.bob.escrow.attest(job, 0, True, [worker.address], [30 * TOKEN], replay)


def test_a_signed_round_counts_once(net: Net, job: int, worker: TokenLayer) -> None:
    sigs = attestation(net, job, 0, False, [worker.address], [5 * TOKEN])
    net.bob.escrow.attest(job, 0, False, [worker.address], [5 * TOKEN], sigs)
    with pytest.raises(ContractRevert, match=f"round 0 of job {job} is stale \\(expected 1\\)"):
        net.bob.escrow.attest(job, 0, False, [worker.address], [5 * TOKEN], sigs)
    assert net.alice.escrow.owed(job, worker.address) == 5 * TOKEN


def test_no_payment_without_attestation(net: Net, job: int, worker: TokenLayer) -> None:
    attest(net, job, 0, False, {net.bob.address: 10 * TOKEN})
    with pytest.raises(ContractRevert, match="nothing attested to withdraw") as caught:
        worker.escrow.withdraw(job)
    assert caught.value.error_args == {"jobId": job, "node": worker.address}


def test_attestations_need_k_oracles(net: Net, job: int, worker: TokenLayer) -> None:
    nodes, amounts = [worker.address], [10 * TOKEN]
    one = attestation(net, job, 0, False, nodes, amounts, keys=net.oracle_keys[:1])
    with pytest.raises(SignatureRejected, match="1 oracle signatures given, 2 required"):
        net.bob.escrow.attest(job, 0, False, nodes, amounts, one)
    forged = attestation(net, job, 0, False, nodes, [99 * TOKEN])
    with pytest.raises(SignatureRejected, match="which is not an oracle"):
        net.bob.escrow.attest(job, 0, False, nodes, amounts, forged)
    # a rewards-claim signature is no attestation, even over look-alike numbers
    claims = [
        sign_claim(k, net.chain_id, net.owner.deployment.escrow, worker.address, [job], [10])
        for k in net.oracle_keys[:THRESHOLD]
    ]
    with pytest.raises(SignatureRejected):
        net.bob.escrow.attest(job, 0, False, nodes, amounts, claims)


def test_attestations_cannot_exceed_the_escrow(net: Net, job: int, worker: TokenLayer) -> None:
    attest(net, job, 0, False, {worker.address: 90 * TOKEN})
    with pytest.raises(ContractRevert, match=f"exceeds the {10 * TOKEN} left in escrow"):
        attest(net, job, 1, False, {net.bob.address: 11 * TOKEN})


def test_only_the_client_cancels(net: Net, job: int, worker: TokenLayer) -> None:
    attest(net, job, 0, False, {worker.address: 25 * TOKEN})
    with pytest.raises(Unauthorized, match=f"only the client of job {job} may do this"):
        net.bob.escrow.cancel(job)
    before = net.alice.token.balance_of()
    assert net.alice.escrow.cancel(job) == 75 * TOKEN
    assert net.alice.token.balance_of() == before + 75 * TOKEN
    assert net.alice.escrow.job(job).status == JobStatus.CANCELLED
    assert worker.escrow.withdraw(job) == 25 * TOKEN  # work attested before the cancel is paid
    with pytest.raises(ContractRevert, match=f"job {job} is no longer open \\(Cancelled\\)"):
        net.alice.escrow.cancel(job)


def test_expired_jobs_are_refunded_by_anyone(net: Net, job: int) -> None:
    with pytest.raises(ContractRevert, match=f"job {job} has not expired"):
        net.bob.escrow.refund_expired(job)
    net.advance(3601)
    before = net.alice.token.balance_of()
    assert net.bob.escrow.refund_expired(job) == JOB_PRICE
    assert net.alice.token.balance_of() == before + JOB_PRICE
    assert net.alice.escrow.job(job).status == JobStatus.EXPIRED


def test_bad_jobs_are_refused(net: Net) -> None:
    with pytest.raises(ContractRevert, match="price must be above zero"):
        net.alice.escrow.create_job(0, net.now() + 60)
    with pytest.raises(ContractRevert, match="is not after the current time"):
        net.alice.escrow.create_job(JOB_PRICE, 1)
    with pytest.raises(ContractRevert, match="job 42 does not exist"):
        net.alice.escrow.cancel(42)


def test_attestation_digest_matches_the_contract(net: Net) -> None:
    escrow = net.alice.escrow
    nodes, amounts = [net.alice.address, net.bob.address], [1, 2]
    view = escrow.contract.functions.attestationDigest(5, 1, True, nodes, amounts)
    local = attestation_digest(net.chain_id, escrow.address, 5, 1, True, nodes, amounts)
    assert bytes(net.alice.client.call(view)) == local
