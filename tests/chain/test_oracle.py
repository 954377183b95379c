"""Pure oracle logic: epochs, availability from heartbeats, median agreement, signatures."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from meshops.chain import (
    AgreementError,
    EpochClock,
    SignatureRejected,
    agree,
    availability,
    sign_claim,
    verify_claim,
)
from meshops.chain.account import recover_signer, sign_digest
from meshops.chain.messages import claim_digest
from meshops.protocol.keys import NodeKey

CLOCK = EpochClock(genesis=1_000, length=60)
REWARDS = "0x" + "ab" * 20
NODE = "0x" + "cd" * 20


def test_epoch_clock_numbers_epochs_like_the_contract() -> None:
    assert CLOCK.epoch_at(999) == 0  # before genesis counts as epoch 0, as on-chain
    assert CLOCK.epoch_at(1_000) == 0
    assert CLOCK.epoch_at(1_059) == 0
    assert CLOCK.epoch_at(1_060) == 1
    assert (CLOCK.start(2), CLOCK.end(2)) == (1_120, 1_180)
    with pytest.raises(ValueError):
        EpochClock(0, 0)


def test_a_node_heard_in_every_slot_is_fully_available() -> None:
    beats = [CLOCK.start(1) + 10 * i + 3 for i in range(6)]
    assert availability(beats, CLOCK, 1, interval=10) == 255


def test_silence_counts_and_bursts_do_not_make_up_for_it() -> None:
    half = [CLOCK.start(1) + 10 * i for i in range(3)]  # first three of six slots
    assert availability(half, CLOCK, 1, interval=10) == 127
    burst = [CLOCK.start(1) + 0.1 * i for i in range(100)]  # 100 beats, one slot
    assert availability(burst, CLOCK, 1, interval=10) == 255 // 6
    assert availability([], CLOCK, 1, interval=10) == 0


def test_heartbeats_outside_the_epoch_are_ignored() -> None:
    outside = [CLOCK.start(1) - 1, CLOCK.end(1), CLOCK.end(1) + 5]
    assert availability(outside, CLOCK, 1, interval=10) == 0


@given(st.lists(st.floats(min_value=0, max_value=5_000, allow_nan=False)), st.integers(1, 120))
def test_availability_is_always_a_byte(beats: list[float], interval: int) -> None:
    assert 0 <= availability(beats, CLOCK, 3, interval) <= 255


def test_agreement_is_the_lower_median() -> None:
    assert agree({"a": 200, "b": 250, "c": 10}, required=2) == 200
    assert agree({"a": 200, "b": 250}, required=2) == 200
    assert agree({"a": 7}, required=1) == 7


@given(st.lists(st.integers(0, 255), min_size=3, max_size=15))
def test_a_minority_of_liars_cannot_move_the_median_out_of_the_honest_range(
    honest: list[int],
) -> None:
    liars = (len(honest) - 1) // 2
    values = {f"h{i}": v for i, v in enumerate(honest)}
    values |= {f"l{i}": 255 for i in range(liars)}
    assert min(honest) <= agree(values, required=1) <= max(honest)


def test_agreement_needs_enough_oracles_and_valid_values() -> None:
    with pytest.raises(AgreementError, match="1 oracle values, 2 required"):
        agree({"a": 1}, required=2)
    with pytest.raises(AgreementError, match="outside 0-255"):
        agree({"a": 1, "b": 300}, required=2)


def test_signatures_are_eip191_over_the_claim_digest() -> None:
    key = NodeKey.generate()
    sig = sign_claim(key, 31337, REWARDS, NODE, [1, 2], [255, 3])
    assert len(sig) == 65 and sig[64] in (27, 28)
    digest = claim_digest(31337, REWARDS, NODE, [1, 2], [255, 3])
    assert recover_signer(digest, sig) == key.eth_address
    assert sign_digest(key, digest) == sig  # deterministic (RFC 6979)


def _verify(sigs: list[bytes], oracles: list[str], threshold: int = 2) -> list[str]:
    return verify_claim(
        sigs,
        oracles,
        threshold,
        chain_id=1,
        rewards=REWARDS,
        node=NODE,
        epochs=[5],
        availabilities=[200],
    )


def test_offchain_verification_refuses_what_the_contract_refuses() -> None:
    keys = [Account.create() for _ in range(3)]
    oracles = [k.address for k in keys[:2]]
    sigs = [sign_claim(k, 1, REWARDS, NODE, [5], [200]) for k in keys]
    assert _verify(sigs[:2], oracles) == oracles
    with pytest.raises(SignatureRejected, match="1 oracle signatures given, 2 required"):
        _verify(sigs[:1], oracles)
    with pytest.raises(SignatureRejected, match="signature 1 repeats oracle"):
        _verify([sigs[0], sigs[0]], oracles)
    with pytest.raises(SignatureRejected, match="signature 1 was made by .* not an oracle"):
        _verify([sigs[0], sigs[2]], oracles)
    with pytest.raises(SignatureRejected, match="signature 0 is malformed"):
        _verify([sigs[0][:64], sigs[1]], oracles)


def test_high_s_signatures_are_malformed_as_on_chain() -> None:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    key = Account.create()
    sig = sign_claim(key, 1, REWARDS, NODE, [5], [200])
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(SignatureRejected, match="malleable"):
        _verify([flipped, sig], [key.address], threshold=1)
