"""Chain fixtures: the embedded chain and anvil (one of each per session), a fresh deployment
per test on whichever chain the test is parametrised with, and named accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from meshops.chain import (
    DEV_KEYS,
    AnvilChain,
    ChainClient,
    EmbeddedChain,
    TokenConfig,
    TokenLayer,
    deploy,
    find_anvil,
)
from meshops.protocol.keys import NodeKey

from .helpers import CAP, EPOCH, ORACLE_KEYS, PRICE, REWARD, SUPPLY, THRESHOLD, Net


@pytest.fixture(scope="session")
def embedded_chain() -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain().start()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[AnvilChain]:
    """Anvil from contracts/node_modules; missing means the test setup is incomplete: fail."""
    if find_anvil() is None:
        pytest.fail("anvil not found: run `npm ci --prefix contracts` (scripts/test does)")
    chain = AnvilChain().start()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> EmbeddedChain | AnvilChain:
    """Every contract test runs on both EVMs (py-evm and anvil's revm)."""
    return request.getfixturevalue(f"{request.param}_chain")


@pytest.fixture
def gas_log() -> dict[str, list[int]]:
    """Gas used per transaction label, filled by every client of the test's ``net``."""
    return {}


@pytest.fixture
def net(chain: EmbeddedChain | AnvilChain, gas_log: dict[str, list[int]]) -> Net:
    def record(label: str, receipt: dict) -> None:
        gas_log.setdefault(label, []).append(int(receipt["gasUsed"]))

    client = ChainClient(chain.url, DEV_KEYS[0], on_receipt=record)
    config = TokenConfig(
        oracles=[Account.from_key(k).address for k in ORACLE_KEYS],
        threshold=THRESHOLD,
        cap=CAP,
        initial_supply=SUPPLY,
        license_price=PRICE,
        reward_per_epoch=REWARD,
        epoch_length=EPOCH,
    )
    owner = TokenLayer(client, deploy(client, config))
    alice, bob = owner.as_account(DEV_KEYS[4]), owner.as_account(DEV_KEYS[5])
    owner.token.transfer(alice.address, 10 * PRICE)
    return Net(chain, owner, alice, bob, NodeKey.generate(), ORACLE_KEYS)
