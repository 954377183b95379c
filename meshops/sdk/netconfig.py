"""NET_CONFIG_MONITOR: asking a node for its pipelines (GET_CONFIG), reading its SET_CONFIG.

The request is exactly the reference SDK's (docs/sdk-interop.md section 2.3): a signed
payload, encrypted in the multi-recipient form (``EE_DEST`` is a list, even of one), sent to
``<root>/<node>/payloads``, path ``[own address, "admin_pipeline", "NET_CONFIG_MONITOR",
null]``, ``EE_ID`` null. A node that allows us answers with an encrypted ``SET_CONFIG`` on
``<root>/<own address>/payloads``; a clear one, or one not addressed to us, is not taken.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshops.node.messages import ADMIN_PIPELINE, NET_CONFIG
from meshops.protocol import TIMESTAMP_FORMAT, Envelope, EventType, Message

__all__ = ["ConfigReplies", "NodeConfigs", "get_config_request", "is_net_config"]


def get_config_request(envelope: Envelope, node_address: str, session_id: str) -> bytes:
    """The signed, encrypted GET_CONFIG for one node."""
    return envelope.encode(
        EventType.PAYLOAD,
        {"NET_CONFIG_DATA": {"OP": "GET_CONFIG", "DEST": [node_address]}},
        path=[envelope.key.address, ADMIN_PIPELINE, NET_CONFIG, None],
        dest=[node_address],
        encrypt=True,
        extra={
            "EE_ID": None,
            "SESSION_ID": session_id,
            "INITIATOR_ID": session_id,
            "TIME": dt.datetime.now().strftime(TIMESTAMP_FORMAT),
        },
    )


def is_net_config(message: Message) -> bool:
    path = message.path
    return (path[1] or "").lower() == ADMIN_PIPELINE and (path[2] or "").upper() == NET_CONFIG


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class NodeConfigs:
    """One SET_CONFIG answer: the node's pipeline configs and instance status rows."""

    node: str | None
    node_address: str
    pipelines: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    received: float
    """``time.monotonic()`` when it arrived."""


class ConfigReplies:
    """The latest SET_CONFIG of each node, fed on the transport thread."""

    def __init__(self, own_address: str) -> None:
        self.own_address = own_address
        self._latest: dict[str, NodeConfigs] = {}
        self._cond = threading.Condition()
        self._closed = False

    def on_message(self, message: Message) -> None:
        """A verified NET_CONFIG_MONITOR payload; taken only when it is a SET_CONFIG that was
        encrypted to us (the reference SDK's rules)."""
        data = message.body.get("NET_CONFIG_DATA")
        if (
            not isinstance(data, Mapping)
            or data.get("OP") != "SET_CONFIG"
            or not message.was_encrypted
            or self.own_address not in message.dest
            or message.sender == self.own_address
        ):
            return
        pipelines = data.get("PIPELINES")
        statuses = data.get("PLUGIN_STATUSES")
        with self._cond:
            self._latest[message.sender] = NodeConfigs(
                node=message.path[0],
                node_address=message.sender,
                pipelines=[p for p in _list(pipelines) if isinstance(p, dict) and "NAME" in p],
                statuses=[s for s in _list(statuses) if isinstance(s, dict)],
                received=time.monotonic(),
            )
            self._cond.notify_all()

    def wait(self, node_address: str, after: float, timeout: float) -> NodeConfigs | None:
        """The first answer of ``node_address`` received after ``after`` (monotonic)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._latest.get(node_address)
                if found is not None and found.received >= after:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
