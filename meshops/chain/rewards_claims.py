"""A licence owner's side of availability rewards: gather oracle signatures, claim.

Oracle nodes write one file per epoch (``meshops.node.availability``): for each node, each
value some oracle signed, and who signed it. The owner reads those files, or asks the oracles
for them over MQTT (``meshops.sdk.claims``); either way the signatures of any number of
oracles are merged, checked against the oracle set and threshold on chain, matched with the
owner's linked licences and claimed, one epoch per transaction (each signature covers one
epoch). Epochs signed by fewer than the threshold are listed as ``short``, by number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from meshops.chain.account import recover_signer
from meshops.chain.layer import TokenLayer
from meshops.chain.messages import claim_digest
from meshops.chain.oracle import MAX_AVAILABILITY
from meshops.errors import ConfigError

__all__ = ["Signatures", "claim", "collect_signatures", "linked_nodes", "plan_claims"]

log = logging.getLogger(__name__)

Signatures = dict[tuple[str, int], dict[int, dict[str, bytes]]]
"""(node, epoch) -> availability -> oracle -> signature."""


def collect_signatures(dirs: Iterable[Path]) -> Signatures:
    """Every signature in the oracle epoch files under ``dirs`` (unreadable files skipped)."""
    found: Signatures = {}
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                data = json.loads(path.read_text("utf-8"))
                epoch = int(data["epoch"])
                claims = data.get("claims") or {}
                for node, values in claims.items():
                    if not is_address(node):
                        continue
                    slot = found.setdefault((to_checksum_address(node), epoch), {})
                    for value, signers in values.items():
                        sigs = slot.setdefault(int(value), {})
                        for oracle, signature in signers.items():
                            sigs[to_checksum_address(oracle)] = bytes.fromhex(
                                signature.removeprefix("0x")
                            )
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.info("skipping oracle file %s: %s", path, exc)
    return found


def _valid(
    layer: TokenLayer, oracles: set[str], node: str, epoch: int, value: int, sigs: dict
) -> list[bytes]:
    """The signatures by distinct oracles that really sign (node, epoch, value)."""
    digest = claim_digest(
        layer.deployment.chain_id, layer.deployment.rewards, node, [epoch], [value]
    )
    good = []
    for signature in sigs.values():
        try:
            if recover_signer(digest, signature) in oracles:
                good.append(signature)
        except ValueError:
            continue
    return good


def linked_nodes(layer: TokenLayer) -> dict[str, tuple[int, int]]:
    """The nodes of the account's linked licences: node -> (link epoch, current epoch), the
    epochs worth asking the oracles about."""
    clock, current = layer.rewards.clock, layer.rewards.current_epoch()
    found: dict[str, tuple[int, int]] = {}
    for license_id in layer.licenses.owned_by():
        info = layer.licenses.info(license_id)
        if info.node is not None:
            found[to_checksum_address(info.node)] = (clock.epoch_at(info.linked_at), current)
    return found


def plan_claims(layer: TokenLayer, signatures: Signatures) -> dict[str, Any]:
    """The owner's licences and, for each, every ended epoch since its link that the oracles
    signed with at least the threshold: availability, reward, claimed or not."""
    oracles = set(layer.oracles())
    threshold = layer.threshold()
    rewards = layer.rewards
    clock, current, per_epoch = rewards.clock, rewards.current_epoch(), rewards.reward_per_epoch
    licenses = []
    claimable = claimable_reward = 0
    for license_id in layer.licenses.owned_by():
        info = layer.licenses.info(license_id)
        entry: dict[str, Any] = {
            "license": license_id,
            "node": info.node,
            "epochs": [],
            "short": [],
        }
        licenses.append(entry)
        if info.node is None:
            continue
        node = to_checksum_address(info.node)
        link_epoch = clock.epoch_at(info.linked_at)
        entry["link_epoch"] = link_epoch
        epochs = sorted(e for (n, e) in signatures if n == node and link_epoch <= e < current)
        for epoch in epochs:
            by_value = signatures[(node, epoch)]
            most = 0
            for value in sorted(by_value, key=lambda v: (-len(by_value[v]), -v)):
                if not 0 < value <= MAX_AVAILABILITY:
                    continue
                good = _valid(layer, oracles, node, epoch, value, by_value[value])
                most = max(most, len(good))
                if len(good) < threshold:
                    continue
                claimed = rewards.is_claimed(license_id, epoch)
                reward = per_epoch * value // MAX_AVAILABILITY
                entry["epochs"].append(
                    {
                        "epoch": epoch,
                        "availability": value,
                        "reward": reward,
                        "claimed": claimed,
                        "signatures": ["0x" + s.hex() for s in good[:threshold]],
                    }
                )
                if not claimed:
                    claimable += 1
                    claimable_reward += reward
                break
            else:
                if by_value:
                    entry["short"].append({"epoch": epoch, "signatures": most})
    return {
        "account": layer.address,
        "current_epoch": current,
        "epoch_length": clock.length,
        "threshold": threshold,
        "licenses": licenses,
        "claimable_epochs": claimable,
        "claimable_reward": claimable_reward,
    }


def claim(
    layer: TokenLayer,
    plan: dict[str, Any],
    *,
    epochs: Sequence[int] | None = None,
    license_id: int | None = None,
) -> list[dict[str, int]]:
    """Claim what ``plan`` offers (only ``epochs`` / ``license_id`` when given).

    An epoch asked for explicitly is sent even if already claimed, so the contract's refusal
    ("epoch 12 already claimed for license 3") is what the caller sees; one the oracles did
    not sign, or that has not ended, is a ``ConfigError`` naming it.
    """
    licenses = plan["licenses"]
    if license_id is not None:
        licenses = [lic for lic in licenses if lic["license"] == license_id]
        if not licenses:
            raise ConfigError(f"licence {license_id} is not held by {layer.address}")
    todo: list[tuple[int, dict[str, Any]]] = []
    if epochs:
        for epoch in dict.fromkeys(epochs):
            if epoch >= plan["current_epoch"]:
                raise ConfigError(
                    f"epoch {epoch} has not ended (current epoch {plan['current_epoch']})"
                )
            matches = [
                (lic["license"], e)
                for lic in licenses
                for e in lic["epochs"]
                if e["epoch"] == epoch
            ]
            if not matches:
                short = [s for lic in licenses for s in lic["short"] if s["epoch"] == epoch]
                if short:
                    raise ConfigError(
                        f"epoch {epoch}: {short[0]['signatures']} valid oracle signature(s) "
                        f"over one value, {plan['threshold']} needed"
                    )
                raise ConfigError(
                    f"epoch {epoch}: no oracle signatures for a licence of {layer.address}"
                )
            todo.extend(matches)
    else:
        todo = [(lic["license"], e) for lic in licenses for e in lic["epochs"] if not e["claimed"]]
        short = sorted({s["epoch"] for lic in licenses for s in lic["short"]})
        if not todo and short:
            raise ConfigError(
                f"fewer than {plan['threshold']} valid oracle signatures for epoch(s) "
                f"{', '.join(map(str, short))}: nothing to claim"
            )
    paid = []
    for lic, entry in todo:
        sigs = [bytes.fromhex(s.removeprefix("0x")) for s in entry["signatures"]]
        amount = layer.rewards.claim(lic, [entry["epoch"]], [entry["availability"]], sigs)
        paid.append(
            {
                "license": lic,
                "epoch": entry["epoch"],
                "availability": entry["availability"],
                "paid": amount,
            }
        )
    return paid
