"""The network map a supervisor keeps from everyone's heartbeats (published as NET_MON_01)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshops._version import __version__
from meshops.errors import MessageRefused, RefusalReason
from meshops.protocol import Message, eth_address_of
from meshops.protocol.canonical import json_too_deep

if TYPE_CHECKING:
    from meshops.node.node import Node

__all__ = ["NetworkMap", "PeerState", "decode_heartbeat"]

log = logging.getLogger(__name__)

ONLINE_WINDOW_S = 60.0
"""The SDK counts a node online for 60 s after its last heartbeat; so does the map."""
FORGET_AFTER_S = 600.0
MAX_ENCODED = 512 * 1024
MAX_PEERS = 1000
MAX_WHITELIST = 100
SNAPSHOT_BUDGET = 1024 * 1024
"""Anyone can sign heartbeats with throw-away keys: what the map keeps and publishes is
bounded, so NET_MON_01 always stays well under the 2 MB message limit."""


def decode_heartbeat(message: Message) -> dict[str, Any]:
    """A heartbeat's fields, the v2 ``ENCODED_DATA`` opened and merged; refused if malformed."""
    body = dict(message.body)
    if body.get("HEARTBEAT_VERSION") == "v2":
        encoded = body.get("ENCODED_DATA")
        if not isinstance(encoded, str) or len(encoded) > MAX_ENCODED:
            raise MessageRefused(RefusalReason.BAD_FIELD, "ENCODED_DATA must be a base64 string")
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(base64.b64decode(encoded, validate=True), 4 * MAX_ENCODED)
            if inflater.unconsumed_tail:
                raise ValueError("decompressed heartbeat too large")
            text_str = text.decode("utf-8")
            if json_too_deep(text_str):
                raise ValueError("nested too deeply")
            inner = json.loads(text_str)
        except (ValueError, zlib.error) as exc:
            raise MessageRefused(RefusalReason.BAD_FIELD, f"ENCODED_DATA: {exc}") from exc
        if not isinstance(inner, dict):
            raise MessageRefused(RefusalReason.BAD_FIELD, "ENCODED_DATA is not an object")
        body.update(inner)
    return body


@dataclass
class PeerState:
    address: str
    alias: str
    last_seen: float
    whitelist: list[str] = field(default_factory=list)
    secured: bool = False
    is_supervisor: bool = False
    version: str | None = None


class NetworkMap:
    """Peers by address, from verified heartbeats; this node is always in it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._peers: dict[str, PeerState] = {}
        self._lock = threading.Lock()

    def on_heartbeat(self, message: Message) -> None:
        fields = decode_heartbeat(message)
        whitelist = fields.get("EE_WHITELIST") or []
        if not isinstance(whitelist, list) or not all(isinstance(a, str) for a in whitelist):
            raise MessageRefused(RefusalReason.BAD_FIELD, "EE_WHITELIST must be a list of strings")
        alias = message.sender_alias or message.sender[-8:]
        with self._lock:
            if message.sender not in self._peers and len(self._peers) >= MAX_PEERS:
                oldest = min(self._peers.values(), key=lambda p: p.last_seen)
                del self._peers[oldest.address]
            self._peers[message.sender] = PeerState(
                address=message.sender,
                alias=str(alias)[:20],
                last_seen=time.time(),
                whitelist=whitelist[:MAX_WHITELIST],
                secured=bool(fields.get("SECURED", False)),
                is_supervisor=bool(fields.get("EE_IS_SUPER", False)),
                version=str(fields.get("VERSION")) if fields.get("VERSION") else None,
            )
            self._forget_old()

    def _forget_old(self) -> None:
        cutoff = time.time() - FORGET_AFTER_S
        for address in [a for a, p in self._peers.items() if p.last_seen < cutoff]:
            del self._peers[address]

    def peers(self) -> list[PeerState]:
        node = self.node
        me = PeerState(
            address=node.address,
            alias=node.alias,
            last_seen=time.time(),
            whitelist=node.allowed_addresses(),
            secured=node.settings.secured,
            is_supervisor=node.settings.supervisor,
            version=__version__,
        )
        with self._lock:
            others = [p for a, p in self._peers.items() if a != node.address]
        return [me, *others]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``CURRENT_NETWORK`` as the SDK reads it (docs/sdk-interop.md, NET_MON_01).

        Most recently seen peers first; the ones seen longest ago are left out when the map
        would not fit ``SNAPSHOT_BUDGET`` (this node is always in).
        """
        now = time.time()
        network: dict[str, dict[str, Any]] = {}
        me, *others = self.peers()
        others.sort(key=lambda p: p.last_seen, reverse=True)
        size = 2
        for peer in [me, *others]:
            age = now - peer.last_seen
            key = peer.alias if peer.alias not in network else f"{peer.alias}-{peer.address[-6:]}"
            network[key] = {
                "address": peer.address,
                "eth_address": eth_address_of(peer.address),
                "eeid": peer.alias,
                "working": "ONLINE" if age < ONLINE_WINDOW_S else "LOST STATUS",
                "whitelist": peer.whitelist,
                "secured": peer.secured,
                "is_supervisor": peer.is_supervisor,
                "last_seen_sec": round(age, 1),
                "version": peer.version,
            }
            size += len(json.dumps({key: network[key]}, separators=(",", ":")))
            if size > SNAPSHOT_BUDGET and peer is not me:
                del network[key]
                break
        return network
