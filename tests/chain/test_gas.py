"""Gas of every operation, on both EVMs: printed for the docs, bounded against regressions."""

from __future__ import annotations

import pytest

from meshops.chain import AnvilChain, EmbeddedChain
from meshops.chain.gas import measure

# Ceilings about 15% above the measured cost: a change that costs more must say so here.
CEILINGS = {
    "deploy MeshLicense": 2_050_000,
    "license buy": 200_000,
    "license link": 140_000,
    "rewards claim, 1 epoch, 2 signatures": 120_000,
    "rewards claim, 7 epochs, 2 signatures": 110_000,
    "escrow create": 155_000,
    "escrow attest, 2 nodes": 172_000,
    "escrow withdraw": 66_000,
}


@pytest.mark.slow
def test_gas_per_operation(chain: EmbeddedChain | AnvilChain) -> None:
    gas = measure(chain.url)
    print("\n" + "\n".join(f"{name:45} {used:>10,}" for name, used in gas.items()))
    for name, ceiling in CEILINGS.items():
        assert gas[name] <= ceiling, f"{name} now costs {gas[name]:,} gas (ceiling {ceiling:,})"
