"""Job escrow: lock a job's price, credit attested work, pay nodes, refund the rest."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from meshops.chain.client import ChainClient
from meshops.chain.errors import TransactionFailed
from meshops.chain.token import Token

__all__ = ["Escrow", "JobInfo", "JobStatus"]


class JobStatus(enum.IntEnum):
    """Mirror of ``MeshEscrow.Status``."""

    NONE = 0
    OPEN = 1
    COMPLETED = 2
    CANCELLED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class JobInfo:
    """A job's escrow: ``price`` locked, ``attested`` credited to nodes so far."""

    job_id: int
    client: str
    deadline: int
    status: JobStatus
    rounds: int
    price: int
    attested: int


class Escrow:
    """The escrow contract as seen by one account (a client, a node, or a relayer)."""

    def __init__(self, client: ChainClient, address: str, token: Token) -> None:
        self.client = client
        self.token = token
        self.contract = client.contract("MeshEscrow", address)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def create_job(self, price: int, deadline: int) -> int:
        """Lock ``price`` tokens (approving them first) until ``deadline``; returns the job id."""
        self.token.ensure_allowance(self.address, price)
        fn = self.contract.functions.createJob(price, deadline)
        receipt = self.client.send(fn, label="escrow create")
        for event in self.contract.events.JobCreated().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["jobId"])
        raise TransactionFailed("createJob emitted no JobCreated event")

    def job(self, job_id: int) -> JobInfo:
        raw = self.client.call(self.contract.functions.job(job_id))
        client, deadline, status, rounds, price, attested = raw
        return JobInfo(
            job_id,
            str(client),
            int(deadline),
            JobStatus(status),
            int(rounds),
            int(price),
            int(attested),
        )

    def owed(self, job_id: int, node: str) -> int:
        """Attested to ``node`` for ``job_id`` and not yet withdrawn."""
        fn = self.contract.functions.owed(job_id, Web3.to_checksum_address(node))
        return int(self.client.call(fn))

    def attest(
        self,
        job_id: int,
        round_: int,
        final: bool,
        nodes: Sequence[str],
        amounts: Sequence[int],
        signatures: Sequence[bytes],
    ) -> TxReceipt:
        """Submit an oracle attestation (anyone may relay it; the signatures are what count)."""
        fn = self.contract.functions.attest(
            job_id,
            round_,
            final,
            [Web3.to_checksum_address(n) for n in nodes],
            list(amounts),
            list(signatures),
        )
        return self.client.send(fn, label="escrow attest")

    def withdraw(self, job_id: int) -> int:
        """Collect what was attested to this account for ``job_id``; returns the amount."""
        receipt = self.client.send(
            self.contract.functions.withdraw(job_id), label="escrow withdraw"
        )
        for event in self.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["amount"])
        raise TransactionFailed("withdraw emitted no Withdrawn event")

    def cancel(self, job_id: int) -> int:
        """Cancel an open job (its client only); returns the refund."""
        return self._closed(
            self.client.send(self.contract.functions.cancel(job_id), label="escrow cancel")
        )

    def refund_expired(self, job_id: int) -> int:
        """Close a job past its deadline; returns the refund sent to its client."""
        fn = self.contract.functions.refundExpired(job_id)
        return self._closed(self.client.send(fn, label="escrow refund expired"))

    def refund_of(self, receipt: TxReceipt) -> int | None:
        """The refund a transaction's ``JobClosed`` event reports, if it closed a job."""
        for event in self.contract.events.JobClosed().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["refund"])
        return None

    def _closed(self, receipt: TxReceipt) -> int:
        refund = self.refund_of(receipt)
        if refund is None:
            raise TransactionFailed("the transaction closed no job")
        return refund
