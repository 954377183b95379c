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
   ``HOME/epochs/<epoch>.json``, which hold k signatures over the same value when the oracles
   agreed. Files older than the retention (``MESHOPS_EPOCH_RETENTION_DAYS``, at least
   ``MIN_KEPT_FILES`` epochs) are deleted.
5. **Serving.** Anyone may ask an oracle for a node's signed epochs (signatures are not secret:
   they only let the licence owner claim what the oracles agreed): a ``GET_CLAIMS`` payload on
   the oracle's ``<root>/<address>/payloads`` is answered, from the files, on the asker's
   payloads topic, at most ``MAX_ANSWER_EPOCHS`` epochs per answer and within per-asker and
   overall rate limits (``RateLimit``), so a flood cannot make it sign thousands of answers.

Nothing here raises out of a message handler except ``MessageRefused`` (the node counts it).
"""

from __future__ import annotations

import bisect
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
    "ASKER_RATE",
    "CLAIMS_FIELD",
    "DEFAULT_RETENTION_DAYS",
    "KEEP_EPOCHS",
    "MAX_ANSWER_EPOCHS",
    "MAX_NODES",
    "MIN_KEPT_FILES",
    "ORACLE_SIGNATURE",
    "ChainTarget",
    "EpochOracle",
    "RateLimit",
    "TokenBucket",
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

CLAIMS_FIELD = "ORACLE_DATA"
"""Body field of claim requests (``OP: GET_CLAIMS``) and answers (``OP: CLAIMS``)."""
MAX_ANSWER_EPOCHS = 200
"""Epoch files one answer looks at; the answer's ``NEXT`` says where to go on."""
ASKER_RATE = (20, 1.0)
"""Answers per asker: a burst of 20, then one a second."""
TOTAL_RATE = (100, 10.0)
"""Answers to everyone together: throw-away keys are free."""
_MAX_ASKERS = 10_000
_MAX_ID = 64
DEFAULT_RETENTION_DAYS = 90.0
MIN_KEPT_FILES = 1000
"""Epoch files kept whatever the retention: short epochs must not lose recent ones."""


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


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` a second; ``take()`` says whether one was left."""

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens, self.at = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(now - self.at, 0.0) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait_s(self, now: float) -> float:
        """Seconds until ``take(now + wait_s)`` succeeds."""
        tokens = min(self.burst, self.tokens + max(now - self.at, 0.0) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


class RateLimit:
    """A bucket per asker (the least recently seen forgotten past ``_MAX_ASKERS``) and one
    for everyone together."""

    def __init__(
        self, per_asker: tuple[int, float] = ASKER_RATE, total: tuple[int, float] = TOTAL_RATE
    ) -> None:
        self.per_asker = per_asker
        self._total = TokenBucket(*total, now=time.monotonic())
        self._askers: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, asker: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._askers.get(asker)
            if bucket is None:
                bucket = self._askers[asker] = TokenBucket(*self.per_asker, now=now)
                if len(self._askers) > _MAX_ASKERS:
                    self._askers.popitem(last=False)
            self._askers.move_to_end(asker)
            # the asker's bucket first: one asker's flood must not use up everyone's answers
            return bucket.take(now) and self._total.take(now)


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
        answer: Callable[[str, dict[str, Any]], None] | None = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        rate_limit: RateLimit | None = None,
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
        self.answer = answer
        self.keep_files = max(math.ceil(retention_days * 86400 / clock.length), MIN_KEPT_FILES)
        self.rate_limit = rate_limit or RateLimit()
        self._files: list[int] | None = None  # sorted epochs with a file, read once
        self._pruned_below = 0

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

        def answer(asker: str, body: dict[str, Any]) -> None:
            fields = {
                "STREAM_NAME": ADMIN_PIPELINE,
                "SIGNATURE": ORACLE_SIGNATURE,
                "INSTANCE_ID": f"{ORACLE_SIGNATURE}_INST",
                **body,
            }
            data = node.envelope.encode(EventType.PAYLOAD, fields, path=path, dest=asker)
            # not durable: an answer nobody took is asked for again
            node.transport.publish(node.topics.payloads_for(asker), data, qos=1, durable=False)

        return cls(
            node.key,
            EpochClock(settings.epoch_genesis, settings.epoch_seconds),
            settings.heartbeat_interval_s,
            oracles=settings.oracles,
            threshold=settings.oracle_threshold,
            deployment=settings.chain_deployment,
            publish=publish,
            out_dir=settings.home / "epochs",
            answer=answer,
            retention_days=settings.epoch_retention_days,
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
        if current - self.keep_files > self._pruned_below:
            self.prune(current)

    def prune(self, current: int) -> int:
        """Delete the epoch files older than ``keep_files`` epochs before ``current``; how many.

        The folder is listed once; later prunes delete by the index, so a long retention of
        short epochs does not mean listing a huge folder every epoch."""
        below = current - self.keep_files
        with self._lock:
            files = self._index()
            cut = bisect.bisect_left(files, below)
            old, files[:cut] = files[:cut], []
            self._pruned_below = max(self._pruned_below, below)
        for epoch in old:
            try:
                (self.out_dir / f"{epoch}.json").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("oracle %s: cannot delete epoch file %d: %s", self.me, epoch, exc)
        if old:
            log.info("oracle %s: deleted %d epoch files before epoch %d", self.me, len(old), below)
        return len(old)

    # ---- serving signatures (the node's message thread) -------------------------------------

    def on_request(self, message: Message) -> None:
        """A ``GET_CLAIMS`` request: answer it from the epoch files; MessageRefused if it is
        malformed, unstamped or over the rate limit (then nothing is signed or sent)."""
        node, start, stop, request_id = _request(message)
        if not self.rate_limit.allow(message.sender):
            raise MessageRefused(
                RefusalReason.RATE_LIMITED, f"GET_CLAIMS rate limit reached for {message.sender}"
            )
        body = self.claims_answer(node, start, stop)
        body["ID"] = request_id
        if self.answer is not None:
            self.answer(message.sender, {CLAIMS_FIELD: body})

    def claims_answer(self, node: str, start: int, stop: int) -> dict[str, Any]:
        """What the files say of ``node`` in epochs ``[start, stop)``: at most
        ``MAX_ANSWER_EPOCHS`` files looked at; ``NEXT`` is the first epoch not looked at."""
        with self._lock:
            files = self._index()
            first = bisect.bisect_left(files, start)
            last = bisect.bisect_left(files, stop, lo=first)
            chosen = files[first : min(last, first + MAX_ANSWER_EPOCHS)]
            more = files[first + MAX_ANSWER_EPOCHS] if last - first > MAX_ANSWER_EPOCHS else None
        target = self.target()
        epochs = []
        for epoch in chosen:
            entry = self._read_claims(epoch, node, target)
            if entry is not None:
                epochs.append(entry)
        return {
            "OP": "CLAIMS",
            "NODE": node,
            "FROM": start,
            "TO": stop,
            "NEXT": more,
            "CHAIN_ID": target.chain_id if target else None,
            "REWARDS": target.rewards if target else None,
            "EPOCHS": epochs,
        }

    def _read_claims(
        self, epoch: int, node: str, target: ChainTarget | None
    ) -> dict[str, Any] | None:
        try:
            data = json.loads((self.out_dir / f"{epoch}.json").read_text("utf-8"))
            if target is not None and (
                data.get("chain_id") != target.chain_id
                or str(data.get("rewards")).lower() != target.rewards.lower()
            ):
                return None  # signed for another deployment
            agreed = (data.get("agreed") or {}).get(node)
            claims = (data.get("claims") or {}).get(node) or {}
        except (OSError, ValueError, AttributeError) as exc:
            log.info("oracle %s: cannot read epoch file %d: %s", self.me, epoch, exc)
            return None
        if agreed is None and not claims:
            return None
        return {"EPOCH": epoch, "AGREED": agreed, "SIGNATURES": claims}

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
            return
        with self._lock:
            files = self._index()
            at = bisect.bisect_left(files, epoch)
            if at == len(files) or files[at] != epoch:
                files.insert(at, epoch)

    def _index(self) -> list[int]:
        """The epochs that have a file, sorted (the folder listed on first use; under lock)."""
        if self._files is None:
            try:
                names = [p.name for p in self.out_dir.iterdir()]
            except OSError:
                names = []
            self._files = sorted(
                int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()
            )
        return self._files


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


def _request(message: Message) -> tuple[str, int, int, str]:
    """A GET_CLAIMS request's node, epoch range and id, checked; MessageRefused if bad."""
    stamp = message.timestamp
    if stamp is None or stamp.tzinfo is None:
        # without a zoned time its age cannot be judged: a replay could be answered forever
        raise MessageRefused(RefusalReason.STALE, "GET_CLAIMS needs EE_TIMESTAMP and EE_TZ")
    data = message.body.get(CLAIMS_FIELD)
    if not isinstance(data, dict) or data.get("OP") != "GET_CLAIMS":
        raise MessageRefused(RefusalReason.BAD_COMMAND, f"{CLAIMS_FIELD}.OP must be GET_CLAIMS")
    node, start, stop = data.get("NODE"), data.get("FROM"), data.get("TO")
    request_id = data.get("ID", "")
    if not isinstance(node, str) or not is_address(node):
        raise MessageRefused(RefusalReason.BAD_FIELD, "GET_CLAIMS NODE must be an eth address")
    if type(start) is not int or type(stop) is not int or not 0 <= start <= stop:
        raise MessageRefused(RefusalReason.BAD_FIELD, "GET_CLAIMS needs integers 0 <= FROM <= TO")
    if not isinstance(request_id, str) or len(request_id) > _MAX_ID:
        raise MessageRefused(RefusalReason.BAD_FIELD, f"GET_CLAIMS ID: a string of <= {_MAX_ID}")
    return to_checksum_address(node), start, stop, request_id
