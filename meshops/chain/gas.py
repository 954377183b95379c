"""Gas used by each token-layer operation, measured on a dev chain.

Runs one scenario (deploy, licences, claims, escrow) and reports the gas of every
transaction, so a contract change shows its cost and docs/chain.md can quote real numbers.
Needs a dev chain that moves time on request (``evm_increaseTime``): the embedded chain
(default) or anvil.

    python -m meshops.chain.gas            # on a fresh embedded chain
    python -m meshops.chain.gas --anvil    # on a fresh anvil
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from eth_account import Account
from web3.types import TxReceipt

from meshops.chain.anvil import AnvilChain
from meshops.chain.client import ChainClient
from meshops.chain.deployment import TOKEN, TokenConfig, deploy
from meshops.chain.devnet import DEV_KEYS
from meshops.chain.embedded import EmbeddedChain
from meshops.chain.layer import TokenLayer
from meshops.chain.oracle import sign_attestation, sign_claim

__all__ = ["measure"]

_EPOCH = 60


def measure(url: str) -> dict[str, int]:
    """Gas of each operation, by name, on the dev chain at ``url`` (fresh deployment)."""
    last: list[TxReceipt] = []
    client = ChainClient(url, DEV_KEYS[0], on_receipt=lambda _label, r: last.append(r))
    oracles = DEV_KEYS[1:4]
    config = TokenConfig(
        oracles=[Account.from_key(k).address for k in oracles], threshold=2, epoch_length=_EPOCH
    )
    owner = TokenLayer(client, deploy(client, config))
    gas: dict[str, int] = {f"deploy {name}": used for name, used in owner.deployment.gas.items()}

    def op(name: str, action: Callable[[], object]) -> None:
        action()
        gas[name] = int(last[-1]["gasUsed"])

    alice, node = owner.as_account(DEV_KEYS[4]), owner.as_account(DEV_KEYS[5])
    op("token transfer", lambda: owner.token.transfer(alice.address, 10_000 * TOKEN))
    op("token approve", lambda: alice.token.approve(owner.deployment.license, 2_000 * TOKEN))
    op("license buy", alice.licenses.buy)
    op("license mint (owner)", lambda: owner.licenses.mint(alice.address))
    op("license link", lambda: alice.licenses.link(1, DEV_KEYS[5]))
    op("license unlink", lambda: alice.licenses.unlink(1))
    alice.licenses.link(1, DEV_KEYS[5])
    client.rpc("evm_increaseTime", [12 * _EPOCH])
    client.rpc("evm_mine", [])

    def claim(epochs: list[int], signers: tuple[bytes, ...]) -> None:
        avails = [200] * len(epochs)
        sigs = [
            sign_claim(k, client.chain_id, owner.deployment.rewards, node.address, epochs, avails)
            for k in signers
        ]
        alice.rewards.claim(1, epochs, avails, sigs)

    op("rewards claim, 1 epoch, 2 signatures", lambda: claim([0], oracles[:2]))
    op("rewards claim, 1 epoch, 3 signatures", lambda: claim([1], oracles))
    op("rewards claim, 7 epochs, 2 signatures", lambda: claim(list(range(2, 9)), oracles[:2]))

    def attest(job: int, round_: int, final: bool, nodes: list[str], amounts: list[int]) -> None:
        escrow = owner.deployment.escrow
        sigs = [
            sign_attestation(k, client.chain_id, escrow, job, round_, final, nodes, amounts)
            for k in oracles[:2]
        ]
        owner.escrow.attest(job, round_, final, nodes, amounts, sigs)

    deadline = client.block_timestamp() + 3_600
    alice.token.approve(owner.deployment.escrow, 300 * TOKEN)
    op("escrow create", lambda: alice.escrow.create_job(100 * TOKEN, deadline))
    two = [node.address, alice.address]
    op("escrow attest, 2 nodes", lambda: attest(1, 0, False, two, [10 * TOKEN, 5 * TOKEN]))
    op("escrow attest final + refund, 1 node", lambda: attest(1, 1, True, two[:1], [20 * TOKEN]))
    op("escrow withdraw", lambda: node.escrow.withdraw(1))
    alice.escrow.create_job(100 * TOKEN, deadline)
    op("escrow cancel + refund", lambda: alice.escrow.cancel(2))
    alice.escrow.create_job(100 * TOKEN, deadline)
    client.rpc("evm_increaseTime", [3_601])
    client.rpc("evm_mine", [])
    op("escrow refund expired", lambda: alice.escrow.refund_expired(3))
    return gas


def main(argv: list[str] | None = None) -> int:
    """Print the gas table (markdown) for a fresh dev chain."""
    parser = argparse.ArgumentParser(prog="python -m meshops.chain.gas", description=__doc__)
    parser.add_argument("--anvil", action="store_true", help="measure on anvil")
    args = parser.parse_args(argv)
    chain: AnvilChain | EmbeddedChain = AnvilChain() if args.anvil else EmbeddedChain()
    with chain:
        gas = measure(chain.url)
    print("| operation | gas |\n| --- | ---: |")
    for name, used in gas.items():
        print(f"| {name} | {used:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
