"""What the session knows of the network: nodes from their heartbeats and the network map.

Heartbeats (``<root>/ctrl``, v1 or v2) are signed by the node itself, so they are the source
for everything about it: alias, allow-list, resources. A supervisor's NET_MON_01 map adds
nodes not heard directly yet (and keeps their last-seen fresh); it never overrides what a
node said of itself. A node counts as online for ``ONLINE_WINDOW_S`` after it was last seen,
as in the reference SDK.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshops.errors import KeyFormatError
from meshops.node.netmon import ONLINE_WINDOW_S, decode_heartbeat
from meshops.protocol import Message, eth_address_of, is_address, parse_address
from meshops.protocol.keys import ADDRESS_PREFIX, LEGACY_ADDRESS_PREFIX
from meshops.sdk.errors import AmbiguousNodeError

__all__ = ["NodeDirectory", "NodeInfo", "Resources", "is_allowed_by"]

_ETH = re.compile(r"0x[0-9a-fA-F]{40}")
MAX_NODES = 10_000


@dataclass(frozen=True)
class Resources:
    """Machine state from the node's last heartbeat; None where it did not say."""

    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_used_percent: float | None = None
    memory_total_gb: float | None = None
    memory_available_gb: float | None = None
    disk_total_gb: float | None = None
    disk_available_gb: float | None = None
    gpus: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class NodeInfo:
    """One node as this session knows it (a snapshot: ``online`` is as of the call)."""

    address: str
    eth_address: str
    alias: str | None
    online: bool
    secured: bool
    allowed: bool
    """Whether this session may command it: not secured, or our address is on its list."""
    supervisor: bool
    resources: Resources
    pipelines: int | None
    """How many pipelines it runs (from its heartbeat; None when not said)."""
    last_seen: float
    """Epoch seconds."""
    version: str | None = None
    heard_directly: bool = False
    """True once its own signed heartbeat arrived (else only a network map reported it)."""
    whitelist: tuple[str, ...] = field(default=(), repr=False)
    models: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """The models its registry holds (``NAME``, ``VERSION``, ``TASK``, ``DIGEST``)."""


def _body(address: str) -> str:
    for prefix in (ADDRESS_PREFIX, LEGACY_ADDRESS_PREFIX):
        if address.startswith(prefix):
            return address[len(prefix) :]
    return address


def is_allowed_by(me: str, node: str, secured: bool, whitelist: tuple[str, ...]) -> bool:
    """The SDK's rule: not secured, or listed (with or without the address prefix)."""
    return not secured or me == node or _body(me) in {_body(a) for a in whitelist}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _resources(fields: Mapping[str, Any]) -> Resources:
    gpus = fields.get("GPUS")
    cores = _num(fields.get("CPU_NR_CORES"))
    return Resources(
        cpu_model=_text(fields.get("CPU")),
        cpu_cores=int(cores) if cores is not None else None,
        cpu_used_percent=_num(fields.get("CPU_USED")),
        memory_total_gb=_num(fields.get("MACHINE_MEMORY")),
        memory_available_gb=_num(fields.get("AVAILABLE_MEMORY")),
        disk_total_gb=_num(fields.get("TOTAL_DISK")),
        disk_available_gb=_num(fields.get("AVAILABLE_DISK")),
        gpus=tuple(g for g in gpus if isinstance(g, dict)) if isinstance(gpus, list) else (),
    )


def _pipeline_count(fields: Mapping[str, Any]) -> int | None:
    count = fields.get("NR_PIPELINES")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    streams = fields.get("CONFIG_STREAMS")
    return len(streams) if isinstance(streams, list) and streams else None


def _models(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        m for m in value[:MAX_NODES] if isinstance(m, dict) and isinstance(m.get("NAME"), str)
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(a for a in value if isinstance(a, str)) if isinstance(value, list) else ()


class NodeDirectory:
    """Nodes by address, fed on the transport's thread, read from any thread."""

    def __init__(self, own_address: str, clock: Callable[[], float] = time.time) -> None:
        self.own_address = own_address
        self._clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._cond = threading.Condition()
        self._closed = False

    # ---- intake (transport thread) -------------------------------------------------------

    def on_heartbeat(self, message: Message) -> None:
        """A verified heartbeat; MessageRefused if its body is malformed."""
        fields = decode_heartbeat(message)
        whitelist = _strings(fields.get("EE_WHITELIST"))
        secured = fields.get("SECURED") is True
        address = message.sender
        with self._cond:
            old = self._nodes.get(address)
            self._store(
                NodeInfo(
                    address=address,
                    eth_address=eth_address_of(address),
                    alias=_text(message.sender_alias, 100),
                    online=True,
                    secured=secured,
                    allowed=is_allowed_by(self.own_address, address, secured, whitelist),
                    supervisor=fields.get("EE_IS_SUPER") is True,
                    resources=_resources(fields),
                    pipelines=_pipeline_count(fields),
                    last_seen=max(self._clock(), old.last_seen if old else 0.0),
                    version=_text(fields.get("VERSION")) or (old.version if old else None),
                    heard_directly=True,
                    whitelist=whitelist,
                    models=_models(fields.get("MODELS")),
                )
            )

    def on_netmon(self, message: Message) -> None:
        """A NET_MON_01 payload: fill in nodes not heard directly, refresh last-seen."""
        network = message.body.get("CURRENT_NETWORK")
        if not isinstance(network, Mapping):
            return
        now = self._clock()
        with self._cond:
            for entry in list(network.values())[:MAX_NODES]:
                if isinstance(entry, Mapping):
                    self._netmon_entry(entry, now, reporter=message.sender)

    def _netmon_entry(self, entry: Mapping[str, Any], now: float, reporter: str) -> None:
        try:
            address = parse_address(entry.get("address"))
        except KeyFormatError:
            return
        ago = _num(entry.get("last_seen_sec"))
        online = entry.get("working") == "ONLINE"
        seen = now - (ago if ago is not None and ago >= 0 else 0.0) if online else 0.0
        if address == reporter:
            seen = now  # a supervisor's own entry: it is alive, it just spoke
        old = self._nodes.get(address)
        if old is not None and old.heard_directly:
            if seen > old.last_seen:
                self._store(replace(old, last_seen=seen))
            return
        whitelist = _strings(entry.get("whitelist"))
        secured = entry.get("secured") is True
        self._store(
            NodeInfo(
                address=address,
                eth_address=eth_address_of(address),
                alias=_text(entry.get("eeid"), 100),
                online=online,
                secured=secured,
                allowed=is_allowed_by(self.own_address, address, secured, whitelist),
                supervisor=entry.get("is_supervisor") is True,
                resources=old.resources if old else Resources(),
                pipelines=old.pipelines if old else None,
                last_seen=max(seen, old.last_seen if old else 0.0),
                version=_text(entry.get("version")),
                whitelist=whitelist,
                models=old.models if old else (),
            )
        )

    def _store(self, info: NodeInfo) -> None:
        if info.address not in self._nodes and len(self._nodes) >= MAX_NODES:
            oldest = min(self._nodes.values(), key=lambda n: n.last_seen)
            del self._nodes[oldest.address]
        self._nodes[info.address] = info
        self._cond.notify_all()

    # ---- queries (any thread) ------------------------------------------------------------

    def _now_view(self, info: NodeInfo) -> NodeInfo:
        online = self._clock() - info.last_seen < ONLINE_WINDOW_S
        return info if info.online == online else replace(info, online=online)

    def nodes(self) -> list[NodeInfo]:
        with self._cond:
            found = [self._now_view(n) for n in self._nodes.values()]
        return sorted(found, key=lambda n: (n.alias or "", n.address))

    def find(self, node: str) -> NodeInfo | None:
        """By 0xai address, Ethereum address or alias; AmbiguousNodeError when several online
        nodes share that alias (an offline namesake yields to the online one)."""
        with self._cond:
            return self._find(node)

    def _find(self, node: str) -> NodeInfo | None:
        if is_address(node):
            info = self._nodes.get(parse_address(node))
        elif _ETH.fullmatch(node):
            info = next(
                (n for n in self._nodes.values() if n.eth_address.lower() == node.lower()), None
            )
        else:
            named = [self._now_view(n) for n in self._nodes.values() if n.alias == node]
            online = sorted(n.address for n in named if n.online)
            if len(online) > 1:
                # Aliases are chosen by the nodes themselves: never guess which one is meant
                # (another node could take a name to receive commands meant for the first).
                raise AmbiguousNodeError(
                    f"{len(online)} online nodes call themselves {node!r}: "
                    f"{', '.join(online)}; name one by its address",
                    node=node,
                    addresses=tuple(online),
                )
            info = max(named, key=lambda n: (n.online, n.heard_directly, n.last_seen), default=None)
        return self._now_view(info) if info is not None else None

    def address_of_alias(self, alias: str) -> str | None:
        info = self.find(alias)
        return info.address if info is not None else None

    def wait(self, node: str, timeout: float, ready: Callable[[NodeInfo], bool]) -> NodeInfo | None:
        """Wait until ``node`` is known and ``ready(info)``; the last view (maybe not ready)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                info = self._find(node)
                left = deadline - time.monotonic()
                if (info is not None and ready(info)) or left <= 0 or self._closed:
                    return info
                # online changes with time alone: look again at least every second
                self._cond.wait(min(left, 1.0))

    def close(self) -> None:
        """Wake every waiter: the session is closing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
