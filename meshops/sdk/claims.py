"""Oracle claim signatures over MQTT: ask oracle nodes for a node's signed epochs.

The request is a signed payload (any key may ask: signatures are not secret) on the oracle's
``<root>/<oracle address>/payloads``, path ``[own address, "admin_pipeline",
"EPOCH_ORACLE_01", null]``::

    {"ORACLE_DATA": {"OP": "GET_CLAIMS", "ID": "...", "NODE": eth address, "FROM": 12, "TO": 40}}

The oracle answers from its epoch files on ``<root>/<own address>/payloads`` (``EE_DEST`` us)::

    {"ORACLE_DATA": {"OP": "CLAIMS", "ID", "NODE", "FROM", "TO", "NEXT": 31 | null,
                     "CHAIN_ID", "REWARDS",
                     "EPOCHS": [{"EPOCH": 12, "AGREED": 200,
                                 "SIGNATURES": {"200": {oracle eth address: "0x..."}}}]}}

At most ``MAX_ANSWER_EPOCHS`` epoch files per answer; ``NEXT`` is where the next request
starts. Nothing in an answer is trusted: each signature is recovered and kept only if an
oracle of the set signed that node, epoch and value for this deployment. Answers of several
oracles are merged until every epoch seen has ``threshold`` signatures over one value (one
oracle's file usually has them all), or every oracle has answered, or the time is up.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import is_address, to_checksum_address

from meshops.chain.account import recover_signer
from meshops.chain.messages import claim_digest
from meshops.chain.oracle import MAX_AVAILABILITY
from meshops.chain.rewards_claims import Signatures
from meshops.errors import KeyFormatError, MessageRefused, RefusalReason
from meshops.node.availability import ASKER_RATE, CLAIMS_FIELD, ORACLE_SIGNATURE, TokenBucket
from meshops.node.messages import ADMIN_PIPELINE
from meshops.node.settings import parse_broker_url
from meshops.protocol import (
    DEFAULT_ROOT_TOPIC,
    Envelope,
    EventType,
    Message,
    NodeKey,
    Topics,
    eth_address_of,
    parse_message,
)
from meshops.sdk.errors import NodeTimeoutError
from meshops.transport import MqttTransport

__all__ = [
    "ClaimsAnswer",
    "FetchResult",
    "Query",
    "claims_request",
    "complete",
    "fetch_signatures",
    "merge",
    "read_answer",
]

log = logging.getLogger(__name__)

RESEND_S = 3.0
"""A request unanswered this long is sent again (the oracle may have been busy)."""


@dataclass(frozen=True)
class Query:
    """A node's epochs ``[start, stop)`` (eth address)."""

    node: str
    start: int
    stop: int


def claims_request(envelope: Envelope, oracle: str, query: Query, request_id: str) -> bytes:
    """The signed GET_CLAIMS for ``oracle`` (its ``0xai_`` address)."""
    return envelope.encode(
        EventType.PAYLOAD,
        {
            CLAIMS_FIELD: {
                "OP": "GET_CLAIMS",
                "ID": request_id,
                "NODE": query.node,
                "FROM": query.start,
                "TO": query.stop,
            }
        },
        path=[envelope.key.address, ADMIN_PIPELINE, ORACLE_SIGNATURE, None],
        dest=oracle,
    )


@dataclass
class ClaimsAnswer:
    """One oracle's answer, its signatures verified (``rejected`` counts those that were not)."""

    oracle: str
    request_id: str
    next: int | None
    signatures: Signatures
    rejected: int = 0


def read_answer(
    message: Message, *, oracles: set[str], chain_id: int, rewards: str, query: Query
) -> ClaimsAnswer:
    """``message`` as a CLAIMS answer to ``query``; MessageRefused if it is not one.

    Signatures by no oracle of ``oracles``, over another node, epoch, value or deployment,
    or for an epoch outside the query, are dropped and counted in ``rejected``."""
    sender = eth_address_of(message.sender)
    data = message.body.get(CLAIMS_FIELD)
    if not isinstance(data, Mapping) or data.get("OP") != "CLAIMS":
        raise MessageRefused(RefusalReason.BAD_FIELD, "not a CLAIMS answer")
    if sender not in oracles:
        raise MessageRefused(RefusalReason.UNAUTHORIZED, f"{sender} is not an oracle")
    nxt, epochs = data.get("NEXT"), data.get("EPOCHS")
    if nxt is not None and (type(nxt) is not int or not query.start < nxt < query.stop):
        raise MessageRefused(RefusalReason.BAD_FIELD, "NEXT must be null or inside FROM..TO")
    if not isinstance(epochs, list):
        raise MessageRefused(RefusalReason.BAD_FIELD, "EPOCHS must be a list")
    answer = ClaimsAnswer(sender, str(data.get("ID")), nxt, {})
    for item in epochs:
        item = item if isinstance(item, Mapping) else {}
        epoch, by_value = item.get("EPOCH"), item.get("SIGNATURES")
        if not isinstance(by_value, Mapping):
            answer.rejected += 1
            continue
        for value_text, signers in by_value.items():
            offered = len(signers) if isinstance(signers, Mapping) else 1
            good = []
            if type(epoch) is int and query.start <= epoch < query.stop:
                good = _verified(oracles, chain_id, rewards, query.node, epoch, value_text, signers)
            answer.rejected += offered - len(good)
            for value, oracle, signature in good:
                slot = answer.signatures.setdefault((query.node, epoch), {})
                slot.setdefault(value, {})[oracle] = signature
    return answer


def _verified(
    oracles: set[str],
    chain_id: int,
    rewards: str,
    node: str,
    epoch: int,
    value_text: Any,
    signers: Any,
) -> list[tuple[int, str, bytes]]:
    """The (value, oracle, signature) of ``signers`` that the named oracle really signed."""
    try:
        value = int(value_text)
    except (TypeError, ValueError):
        return []
    if not 0 < value <= MAX_AVAILABILITY or not isinstance(signers, Mapping):
        return []
    digest = claim_digest(chain_id, rewards, node, [epoch], [value])
    good = []
    for oracle, text in signers.items():
        if not isinstance(oracle, str) or not is_address(oracle) or not isinstance(text, str):
            continue
        try:
            signer = recover_signer(digest, bytes.fromhex(text.removeprefix("0x")))
        except ValueError:
            continue
        if signer in oracles and signer == to_checksum_address(oracle):
            good.append((value, signer, bytes.fromhex(text.removeprefix("0x"))))
    return good


def merge(into: Signatures, more: Signatures) -> None:
    """Add ``more`` to ``into`` (the same signature twice counts once: keyed by oracle)."""
    for key, by_value in more.items():
        slot = into.setdefault(key, {})
        for value, sigs in by_value.items():
            slot.setdefault(value, {}).update(sigs)


def complete(signatures: Signatures, threshold: int) -> bool:
    """Whether every (node, epoch) has ``threshold`` signatures over one value."""
    return all(
        max((len(s) for s in by_value.values()), default=0) >= threshold
        for by_value in signatures.values()
    )


@dataclass
class _Oracle:
    """Our conversation with one oracle: what is left to ask, what is in flight."""

    address: str
    todo: list[Query]
    bucket: TokenBucket
    pending: tuple[str, Query] | None = None
    sent_at: float = 0.0
    answered: bool = False

    @property
    def done(self) -> bool:
        return not self.todo and self.pending is None


@dataclass
class FetchResult:
    """What the oracles answered: verified signatures, who answered, what was dropped."""

    signatures: Signatures = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    rejected: int = 0


def fetch_signatures(
    broker: str,
    key: NodeKey,
    queries: list[Query],
    *,
    oracles: Iterable[str],
    threshold: int,
    chain_id: int,
    rewards: str,
    timeout: float = 10.0,
    candidates: Iterable[str] = (),
    root: str = DEFAULT_ROOT_TOPIC,
    username: str | None = None,
    password: str | None = None,
) -> FetchResult:
    """Ask the oracle nodes on ``broker`` for ``queries``; their verified signatures, merged.

    Oracles are the ``candidates`` (``0xai_`` addresses) whose key is in ``oracles`` (eth
    addresses, the controller's set), and every node of the set heard in a heartbeat. Each is
    asked for every query, page by page, one request at a time, within the rate it allows.
    NodeTimeoutError if no oracle answered within ``timeout``."""
    oracle_set = {to_checksum_address(o) for o in oracles}
    host, port = parse_broker_url(broker)
    topics = Topics(root)
    envelope = Envelope(key, alias="claims")
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    transport = MqttTransport(
        host,
        port,
        client_id=f"meshops-claims-{uuid.uuid4().hex[:8]}",
        on_message=lambda topic, data: inbox.put((topic, data)),
        username=username,
        password=password,
    )
    for topic in (topics.ctrl, topics.payloads_for(key.address)):
        transport.subscribe(topic, qos=1)
    result = FetchResult()
    talks: dict[str, _Oracle] = {}

    def meet(address: str) -> None:
        try:
            eth = eth_address_of(address)
        except KeyFormatError:
            return
        if eth in oracle_set and eth not in talks:
            talks[eth] = _Oracle(address, list(queries), TokenBucket(*ASKER_RATE, time.monotonic()))

    deadline = time.monotonic() + timeout
    transport.start(timeout=timeout)
    try:
        for address in candidates:
            meet(address)
        while True:
            now = time.monotonic()
            for talk in talks.values():
                _send(talk, envelope, transport, topics, now)
            if _finished(talks, oracle_set, result, threshold) or now >= deadline:
                break
            try:
                topic, data = inbox.get(timeout=min(0.2, max(deadline - now, 0.01)))
            except queue.Empty:
                continue
            try:
                message = parse_message(data, own_key=key)
            except MessageRefused:
                continue
            if topic == topics.ctrl:
                meet(message.sender)
                continue
            _take(message, talks, result, oracle_set, chain_id, rewards)
    finally:
        transport.stop(timeout=2.0)
    if not result.answered:
        asked = sorted(t.address for t in talks.values())
        raise NodeTimeoutError(
            f"no oracle answered within {timeout:g} s on {broker} (asked: "
            f"{', '.join(asked) or 'none: no node of the oracle set was heard'})",
            node=", ".join(asked) or "oracles",
        )
    return result


def _send(
    talk: _Oracle, envelope: Envelope, transport: MqttTransport, topics: Topics, now: float
) -> None:
    if talk.pending is not None and now - talk.sent_at < RESEND_S:
        return
    if talk.pending is None:
        if not talk.todo:
            return
        talk.pending = (uuid.uuid4().hex[:16], talk.todo.pop(0))
    if not talk.bucket.take(now):  # stay under the oracle's rate limit rather than be ignored
        return
    request_id, query = talk.pending
    data = claims_request(envelope, talk.address, query, request_id)
    transport.publish(topics.payloads_for(talk.address), data, qos=1, durable=False)
    talk.sent_at = now


def _take(
    message: Message,
    talks: dict[str, _Oracle],
    result: FetchResult,
    oracle_set: set[str],
    chain_id: int,
    rewards: str,
) -> None:
    talk = talks.get(eth_address_of(message.sender))
    data = message.body.get(CLAIMS_FIELD)
    if talk is None or talk.pending is None or not isinstance(data, Mapping):
        return
    request_id, query = talk.pending
    if data.get("ID") != request_id:
        return  # an answer to an earlier copy of a request
    try:
        answer = read_answer(
            message, oracles=oracle_set, chain_id=chain_id, rewards=rewards, query=query
        )
    except MessageRefused as exc:
        log.info("oracle %s: bad answer: %s", talk.address, exc)
        return
    talk.pending = None
    if answer.next is not None:
        talk.todo.insert(0, Query(query.node, answer.next, query.stop))
    if not talk.answered:
        talk.answered = True
        result.answered.append(answer.oracle)
    result.rejected += answer.rejected
    if answer.rejected:
        log.info("oracle %s: %d signatures did not verify", talk.address, answer.rejected)
    merge(result.signatures, answer.signatures)


def _finished(
    talks: dict[str, _Oracle], oracle_set: set[str], result: FetchResult, threshold: int
) -> bool:
    """Every oracle answered everything; or one did, those that answer are done, and every
    epoch seen has the threshold."""
    if set(talks) == oracle_set and all(t.done for t in talks.values()):
        return True
    answering = [t for t in talks.values() if t.answered]
    return (
        any(t.done for t in answering)
        and all(t.done for t in answering)
        and complete(result.signatures, threshold)
    )
