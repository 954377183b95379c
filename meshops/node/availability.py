"""Epochs and availability on oracle nodes: heartbeats seen → signed tables → signed claims.

Every oracle node (supervisors by default, ``MESHOPS_ORACLE``) does the same, per epoch:

1. **Sightings.** Each verified, fresh heartbeat on ``<root>/ctrl`` marks its sender seen in
   one slot (a heartbeat period) of the current epoch, by the oracle's own clock. A bitmap per
   node and epoch: bounded memory (``MAX_NODES`` nodes, ``KEEP_EPOCHS`` epochs).
2. **Table.** Shortly after the epoch ends the oracle computes every node's availability
   (``meshops.chain.oracle.availability``) and publishes the table on ``<root>/oracles`` as a
   normal signed MeshOps message.
3. **Agreement.** Once it holds the tables of every oracle (or, after a wait, of at least the
   threshold), it takes each node's lower median (``oracle.agree``; a node missing from a
   table counts 0 there), signs the claim digest the rewards contract checks
   (``oracle.sign_claim``) and publishes these signatures.
4. **Hand-over.** Every oracle keeps every valid signature it receives and writes, per epoch,
   ``HOME/epochs/<epoch>.json``; a licence owner reads those files (``meshops rewards``), which
   hold k signatures over the same value when the oracles agreed.

Nothing here raises out of a message handler except ``MessageRefused`` (the node counts it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import is_address, to_checksum_address

from meshops.chain.account import recover_signer
from meshops.chain.errors import AgreementError
from meshops.chain.messages import claim_digest
from meshops.chain.oracle import MAX_AVAILABILITY, EpochClock, agree, availability, sign_claim
from meshops.errors import MessageRefused, RefusalReason
from meshops.protocol import EventType, Message, NodeKey, eth_address_of

if TYPE_CHECKING:
    from meshops.node.node import Node

__all__ = [
    "KEEP_EPOCHS",
    "MAX_NODES",
    "ORACLE_SIGNATURE",
    "ChainTarget",
    "EpochOracle",
    "oracle_topic",
    "read_deployment",
]

log = logging.getLogger(__name__)

ORACLE_SIGNATURE = "EPOCH_ORACLE_01"
ADMIN_PIPELINE = "admin_pipeline"
KEEP_EPOCHS = 4
"""Epochs kept in memory (sightings, tables, signatures); older ones live in the files."""
MAX_NODES = 1000
"""Nodes tracked per epoch: anyone can sign heartbeats with throw-away keys."""
_MAX_HASHES = 20_000


def oracle_topic(root: str) -> str:
    """Where oracles publish availability tables and claim signatures."""
    return f"{root}/oracles"


@dataclass(frozen=True)
class ChainTarget:
    """What a claim signature binds to: the chain and the rewards contract."""

    chain_id: int
    rewards: str
    genesis: int
    epoch_length: int


def read_deployment(path: Path | None) -> ChainTarget | None:
    """The deployment record at ``path`` (None while it does not exist or is unreadable)."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        return ChainTarget(
            int(data["chain_id"]),
            to_checksum_address(data["rewards"]),
            int(data["genesis"]),
            int(data["epoch_length"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the deployment record %s: %s", path, exc)
        return None


@dataclass
class _Epoch:
    sightings: dict[str, bytearray]
    tables: dict[str, dict[str, int]]
    claims: dict[str, dict[int, dict[str, str]]]  # node -> value -> oracle -> signature hex
    agreed: dict[str, int] | None = None
    published: bool = False


class EpochOracle:
    """One oracle's view of the epochs; feed it heartbeats and oracle messages, ``tick()``."""

    def __init__(
        self,
        key: NodeKey,
        clock: EpochClock,
        interval: float,
        *,
        oracles: list[str],
        threshold: int | None,
        deployment: Path | None,
        publish: Callable[[dict[str, Any]], None],
        out_dir: Path,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.me = key.eth_address
        self.clock = clock
        self.interval = interval
        self.oracles = sorted(set(oracles) or {self.me})
        self.threshold = threshold or len(self.oracles) // 2 + 1
        if self.threshold > len(self.oracles):
            raise ValueError(f"threshold {self.threshold} > {len(self.oracles)} oracles")
        if self.me not in self.oracles:
            log.warning("this oracle %s is not in the oracle set %s", self.me, self.oracles)
        self.deployment = deployment
        self.publish = publish
        self.out_dir = out_dir
        self._now = now
        self.started = now()
        self.slots = math.ceil(clock.length / interval)
        self.table_grace = min(0.5, clock.length * 0.2)
        self.sign_wait = min(max(2 * interval, clock.length * 0.5), 120.0)
        self._epochs: dict[int, _Epoch] = {}
        self._hashes: OrderedDict[str, None] = OrderedDict()
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._target: ChainTarget | None = None
        self._mismatch_logged = False

    @classmethod
    def for_node(cls, node: Node) -> EpochOracle:
        """The oracle of ``node``, publishing through its envelope and transport."""
        settings = node.settings
        topic = oracle_topic(settings.root_topic)
        path = [node.alias, ADMIN_PIPELINE, ORACLE_SIGNATURE, f"{ORACLE_SIGNATURE}_INST"]

        def publish(body: dict[str, Any]) -> None:
            fields = {
                "STREAM_NAME": ADMIN_PIPELINE,
                "SIGNATURE": ORACLE_SIGNATURE,
                "INSTANCE_ID": f"{ORACLE_SIGNATURE}_INST",
                **body,
            }
            data = node.envelope.encode(EventType.PAYLOAD, fields, path=path)
            node.transport.publish(topic, data, qos=1, durable=True)

        return cls(
            node.key,
            EpochClock(settings.epoch_genesis, settings.epoch_seconds),
            settings.heartbeat_interval_s,
            oracles=settings.oracles,
            threshold=settings.oracle_threshold,
            deployment=settings.chain_deployment,
            publish=publish,
            out_dir=settings.home / "epochs",
        )

    # ---- intake (the node's message thread) -------------------------------------------------

    def on_heartbeat(self, message: Message) -> None:
        """Mark the sender seen now, if the heartbeat is fresh and new."""
        received = self._now()
        stamp = message.timestamp
        if stamp is None or stamp.tzinfo is None:
            return  # its age cannot be judged: a replay could count as a sighting
        if abs(stamp.timestamp() - received) > max(2 * self.interval, 5.0):
            return
        if received < self.clock.genesis:
            return
        node = eth_address_of(message.sender)
        epoch = self.clock.epoch_at(received)
        slot = min(int((received - self.clock.start(epoch)) // self.interval), self.slots - 1)
        with self._lock:
            if message.hash in self._hashes:
                return
            self._hashes[message.hash] = None
            if len(self._hashes) > _MAX_HASHES:
                self._hashes.popitem(last=False)
            state = self._epoch(epoch)
            bits = state.sightings.get(node)
            if bits is None:
                if len(state.sightings) >= MAX_NODES:
                    return
                bits = state.sightings[node] = bytearray((self.slots + 7) // 8)
            bits[slot // 8] |= 1 << (slot % 8)

    def on_message(self, message: Message) -> None:
        """A table or claim signatures from another oracle; MessageRefused if bad."""
        sender = eth_address_of(message.sender)
        if sender not in self.oracles:
            raise MessageRefused(RefusalReason.UNAUTHORIZED, f"{sender} is not an oracle")
        body = message.body
        kind, epoch = body.get("KIND"), body.get("EPOCH")
        if type(epoch) is not int or epoch < 0:
            raise MessageRefused(RefusalReason.BAD_FIELD, "EPOCH must be a non-negative integer")
        current = self.clock.epoch_at(self._now())
        if not current - KEEP_EPOCHS <= epoch < current:
            raise MessageRefused(RefusalReason.BAD_FIELD, f"epoch {epoch} is not a recent one")
        if kind == "TABLE":
            table = _table(body.get("AVAILABILITY"))
            with self._lock:
                state = self._epoch(epoch)
                if state.agreed is None:
                    state.tables[sender] = table
                    self._dirty.add(epoch)
        elif kind == "CLAIMS":
            self._on_claims(sender, epoch, body)
        else:
            raise MessageRefused(RefusalReason.BAD_FIELD, "KIND must be TABLE or CLAIMS")

    def _on_claims(self, sender: str, epoch: int, body: Mapping[str, Any]) -> None:
        target = self.target()
        if target is None:
            return  # cannot check them yet; the sender's own file keeps them
        if body.get("CHAIN_ID") != target.chain_id or body.get("REWARDS") != target.rewards:
            raise MessageRefused(RefusalReason.BAD_FIELD, "claims for another deployment")
        claims = body.get("CLAIMS")
        if not isinstance(claims, dict) or len(claims) > MAX_NODES:
            raise MessageRefused(RefusalReason.BAD_FIELD, "CLAIMS must be an object")
        checked: list[tuple[str, int, str]] = []
        for node, entry in claims.items():
            if not (
                isinstance(node, str)
                and is_address(node)
                and isinstance(entry, list)
                and len(entry) == 2
                and type(entry[0]) is int
                and 0 < entry[0] <= MAX_AVAILABILITY
                and isinstance(entry[1], str)
            ):
                raise MessageRefused(RefusalReason.BAD_FIELD, f"CLAIMS[{node!r}] is malformed")
            value, signature = entry
            digest = claim_digest(target.chain_id, target.rewards, node, [epoch], [value])
            try:
                signer = recover_signer(digest, bytes.fromhex(signature.removeprefix("0x")))
            except ValueError as exc:
                raise MessageRefused(RefusalReason.BAD_SIGNATURE, f"CLAIMS[{node}]: {exc}") from exc
            if signer != sender:
                raise MessageRefused(
                    RefusalReason.BAD_SIGNATURE, f"CLAIMS[{node}] is not signed by {sender}"
                )
            checked.append((to_checksum_address(node), value, signature))
        with self._lock:
            state = self._epoch(epoch)
            for node, value, signature in checked:
                state.claims.setdefault(node, {}).setdefault(value, {})[sender] = signature
            self._dirty.add(epoch)

    # ---- the epoch loop ---------------------------------------------------------------------

    def target(self) -> ChainTarget | None:
        """The deployment claims are signed for (read once it exists)."""
        if self._target is None:
            found = read_deployment(self.deployment)
            if found is not None and (found.genesis, found.epoch_length) != (
                self.clock.genesis,
                self.clock.length,
            ):
                if self._mismatch_logged:
                    return None
                self._mismatch_logged = True
                log.error(
                    "the deployment's epochs (genesis %d, %d s) differ from this node's "
                    "(genesis %d, %d s): signing no claims",
                    found.genesis,
                    found.epoch_length,
                    self.clock.genesis,
                    self.clock.length,
                )
                found = None
            self._target = found
        return self._target

    def tick(self) -> None:
        """Publish tables and claim signatures that are due; write changed epoch files."""
        now = self._now()
        current = self.clock.epoch_at(now) if now >= self.clock.genesis else -1
        for epoch in range(max(current - KEEP_EPOCHS, 0), current):
            end = self.clock.end(epoch)
            if end <= self.started:
                continue  # ended before this oracle was listening
            with self._lock:
                state = self._epoch(epoch)
            if not state.published and now >= end + self.table_grace:
                self._publish_table(epoch, state)
            if state.published and state.agreed is None:
                ready = len(state.tables) >= len(self.oracles) or (
                    now >= end + self.sign_wait and len(state.tables) >= self.threshold
                )
                target = self.target()
                if ready and target is not None:
                    self._sign(epoch, state, target)
        with self._lock:
            for old in [e for e in self._epochs if e < current - KEEP_EPOCHS]:
                del self._epochs[old]
            dirty, self._dirty = self._dirty & set(self._epochs), set()
            snapshots = {e: self._snapshot(e, self._epochs[e]) for e in dirty}
        for epoch, snapshot in snapshots.items():
            self._write(epoch, snapshot)

    def table(self, epoch: int) -> dict[str, int]:
        """This oracle's availability of every node it saw in ``epoch``."""
        with self._lock:
            sightings = dict(self._epoch(epoch).sightings)
        start = self.clock.start(epoch)
        result = {}
        for node, bits in sightings.items():
            times = [  # the middle of each slot seen: no rounding moves it to the next one
                start + (slot + 0.5) * self.interval
                for slot in range(self.slots)
                if bits[slot // 8] >> (slot % 8) & 1
            ]
            result[node] = availability(times, self.clock, epoch, self.interval)
        return result

    def _publish_table(self, epoch: int, state: _Epoch) -> None:
        table = self.table(epoch)
        with self._lock:
            state.tables[self.me] = table
            state.published = True
            self._dirty.add(epoch)
        self.publish({"KIND": "TABLE", "EPOCH": epoch, "AVAILABILITY": table})
        log.info("oracle %s: epoch %d availability of %d nodes", self.me, epoch, len(table))

    def _sign(self, epoch: int, state: _Epoch, target: ChainTarget) -> None:
        with self._lock:
            tables = dict(state.tables)
        nodes = sorted({n for table in tables.values() for n in table})
        agreed: dict[str, int] = {}
        signed: dict[str, list[Any]] = {}
        for node in nodes:
            try:
                value = agree({o: t.get(node, 0) for o, t in tables.items()}, self.threshold)
            except AgreementError as exc:
                log.warning("oracle %s: epoch %d, node %s: %s", self.me, epoch, node, exc)
                continue
            agreed[node] = value
            if value > 0:
                signature = sign_claim(
                    self.key, target.chain_id, target.rewards, node, [epoch], [value]
                )
                signed[node] = [value, "0x" + signature.hex()]
        with self._lock:
            state.agreed = agreed
            for node, (value, signature) in signed.items():
                state.claims.setdefault(node, {}).setdefault(value, {})[self.me] = signature
            self._dirty.add(epoch)
        self.publish(
            {
                "KIND": "CLAIMS",
                "EPOCH": epoch,
                "CHAIN_ID": target.chain_id,
                "REWARDS": target.rewards,
                "CLAIMS": signed,
            }
        )
        log.info("oracle %s: epoch %d agreed for %d nodes", self.me, epoch, len(agreed))

    # ---- helpers ----------------------------------------------------------------------------

    def _epoch(self, epoch: int) -> _Epoch:
        state = self._epochs.get(epoch)
        if state is None:
            state = self._epochs[epoch] = _Epoch({}, {}, {})
        return state

    def _snapshot(self, epoch: int, state: _Epoch) -> dict[str, Any]:
        target = self._target
        return {
            "epoch": epoch,
            "start": self.clock.start(epoch),
            "end": self.clock.end(epoch),
            "oracle": self.me,
            "oracles": self.oracles,
            "threshold": self.threshold,
            "chain_id": target.chain_id if target else None,
            "rewards": target.rewards if target else None,
            "tables": {o: dict(t) for o, t in state.tables.items()},
            "agreed": dict(state.agreed) if state.agreed is not None else None,
            "claims": {
                node: {str(v): dict(sigs) for v, sigs in values.items()}
                for node, values in state.claims.items()
            },
        }

    def _write(self, epoch: int, snapshot: dict[str, Any]) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"{epoch}.json"
            tmp = path.with_name(f".{epoch}.json.tmp")
            tmp.write_text(json.dumps(snapshot, indent=1, sort_keys=True), "utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.error("oracle %s: cannot write epoch %d: %s", self.me, epoch, exc)


def _table(value: object) -> dict[str, int]:
    """A received AVAILABILITY table, checked: eth address -> 0..255, at most MAX_NODES."""
    if not isinstance(value, dict) or len(value) > MAX_NODES:
        raise MessageRefused(RefusalReason.BAD_FIELD, "AVAILABILITY must be an object")
    table = {}
    for node, avail in value.items():
        if not isinstance(node, str) or not is_address(node):
            raise MessageRefused(RefusalReason.BAD_FIELD, f"AVAILABILITY key {node!r}")
        if type(avail) is not int or not 0 <= avail <= MAX_AVAILABILITY:
            raise MessageRefused(RefusalReason.BAD_FIELD, f"AVAILABILITY[{node}] = {avail!r}")
        table[to_checksum_address(node)] = avail
    return table
