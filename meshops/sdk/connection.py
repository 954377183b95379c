"""The session's link to the network: one MQTT connection, verified intake, signed commands.

``Connection`` owns the ``MqttTransport`` (paho's thread and a dispatcher thread) and the
payload router's callback thread, and stops them in ``close()``. Everything received is
checked by ``parse_message`` (signature, a per-session replay guard, age) before it counts:
heartbeats and the network map feed the :class:`NodeDirectory`, notifications the open
:class:`Transaction` s, payloads the :class:`PayloadRouter`. Commands are signed by the
session key, encrypted to the node and sent to ``<root>/<node>/config``.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
import uuid
from typing import Any

from meshops.errors import MessageRefused
from meshops.node.messages import ADMIN_PIPELINE, NET_CONFIG, NET_MON
from meshops.protocol import (
    TIMESTAMP_FORMAT,
    Channel,
    Command,
    Envelope,
    MemoryReplayGuard,
    Message,
    NodeKey,
    Topics,
    parse_message,
)
from meshops.sdk.discovery import NodeDirectory, NodeInfo
from meshops.sdk.errors import (
    NodeNotAllowedError,
    NodeNotFoundError,
    NodeTimeoutError,
    SessionClosedError,
)
from meshops.sdk.netconfig import ConfigReplies, NodeConfigs, get_config_request
from meshops.sdk.payloads import Payload, PayloadRouter
from meshops.sdk.transactions import Expect, Transaction, Transactions, remaining
from meshops.transport import MqttTransport

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """What a session and its pipelines share; made and closed by ``Session``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        key: NodeKey,
        broker: str,
        topics: Topics,
        name: str,
        username: str | None,
        password: str | None,
        connect_timeout: float,
    ) -> None:
        self.key = key
        self.address = key.address
        self.name = name
        self.broker = broker
        self.uid = uuid.uuid4().hex[:8]
        self.topics = topics
        self.envelope = Envelope(key, alias=name)
        self.refused: collections.Counter[str] = collections.Counter()
        self.directory = NodeDirectory(self.address)
        self.router = PayloadRouter(name, self.directory.address_of_alias)
        self.rest_instance_id = f"rest_exec_{self.uid}"
        """This session's ``REST_CUSTOM_EXEC_01`` instance in any pipeline it runs code in."""
        self.closed = False
        self._replay_guard = MemoryReplayGuard(window_s=600.0)
        self._configs = ConfigReplies(self.address)
        self._transactions = Transactions()
        self._transport = MqttTransport(
            host,
            port,
            client_id=f"meshops-sdk-{self.uid}-{self.address[-8:]}",
            on_message=self._on_message,
            username=username,
            password=password,
        )
        for topic in (
            topics.ctrl,
            topics.notif,
            topics.payloads,
            topics.payloads_for(self.address),
        ):
            self._transport.subscribe(topic, qos=1)
        self.router.start()
        try:
            self._transport.start(timeout=connect_timeout)
        except BaseException:
            self.router.close(timeout=1.0)
            raise

    def check_open(self) -> None:
        if self.closed:
            raise SessionClosedError(f"session {self.name} is closed")

    def close(self, timeout: float) -> None:
        """Fail what waits, stop the transport and the callback thread."""
        self.closed = True
        self._transactions.close(SessionClosedError(f"session {self.name} is closed"))
        self.directory.close()
        self._configs.close()
        self._transport.stop(timeout=timeout)
        self.router.close(timeout=timeout)

    # ---- nodes ---------------------------------------------------------------------------

    def wait_for_node(self, name: str, timeout: float, *, allowed: bool) -> NodeInfo:
        """Wait until ``name`` is online (and allows us): NodeNotFoundError naming what is
        missing, NodeNotAllowedError when it is secured without us."""
        info = self.directory.wait(name, timeout, lambda n: n.online and (n.allowed or not allowed))
        self.check_open()
        if info is None:
            seen = sorted({n.alias or n.address for n in self.directory.nodes()})
            raise NodeNotFoundError(
                f"node {name!r} not seen within {timeout:g} s on {self.broker} (root topic "
                f"{self.topics.root!r}): no heartbeat or network map names it; "
                f"seen: {', '.join(seen) or 'none'}",
                node=name,
            )
        if not info.online:
            raise NodeNotFoundError(
                f"node {name!r} ({info.address}) is offline: last seen "
                f"{time.time() - info.last_seen:.0f} s ago",
                node=name,
            )
        if allowed and not info.allowed:
            raise self._not_allowed(name, info)
        return info

    def target(self, name: str, timeout: float) -> NodeInfo:
        """The node to command: waits until it is seen, fails at once if it refuses us."""
        info = self.wait_for_node(name, timeout, allowed=False)
        if not info.allowed:
            raise self._not_allowed(name, info)
        return info

    def _not_allowed(self, name: str, info: NodeInfo) -> NodeNotAllowedError:
        return NodeNotAllowedError(
            f"node {name!r} ({info.address}) is secured and does not allow this session's "
            f"address {self.address}; its owner can allow it with "
            f"`meshops node allow {self.address}`",
            node=name,
            address=self.address,
        )

    # ---- intake (dispatcher thread) ------------------------------------------------------

    def _on_message(self, topic: str, data: bytes) -> None:
        try:
            message = parse_message(data, own_key=self.key, replay_guard=self._replay_guard)
            if message.sender == self.address:
                return
            if topic == self.topics.ctrl:
                self.directory.on_heartbeat(message)
            elif topic == self.topics.notif:
                self._transactions.feed(message)
            else:
                self._on_payload(message)
        except MessageRefused as exc:
            self.refused[str(exc.reason)] += 1
            log.debug("session %s refused a message on %s: %s", self.name, topic, exc)

    def _on_payload(self, message: Message) -> None:
        path = message.path
        if (path[1] or "").lower() == ADMIN_PIPELINE:
            signature = (path[2] or "").upper()
            if signature == NET_MON:
                self.directory.on_netmon(message)
            elif signature == NET_CONFIG:
                self._configs.on_message(message)
            return
        self.router.deliver(Payload.from_message(message))

    # ---- sending -------------------------------------------------------------------------

    def command(
        self,
        node_address: str,
        node_name: str,
        pipeline: str,
        action: Command,
        payload: Any,
        expected: list[Expect],
        *,
        timeout: float,
    ) -> None:
        """Send one command about ``pipeline`` and wait for ``expected`` (DeployError)."""
        self.check_open()
        what = f"{action.value} of pipeline {pipeline!r}"
        transaction = Transaction(what, node_address, node_name, expected, self.name)
        with self._transactions.opened(transaction):
            data = self.envelope.encode(
                "COMMAND",
                {"ACTION": action.value, "PAYLOAD": payload},
                dest=node_address,
                encrypt=True,
                extra={
                    "EE_ID": node_address,
                    "SESSION_ID": self.name,
                    "INITIATOR_ID": self.name,
                    "TIME": dt.datetime.now().strftime(TIMESTAMP_FORMAT),
                },
            )
            self._transport.publish(
                self.topics.config(node_address), data, qos=Channel.CONFIG.qos, durable=False
            )
            transaction.wait(timeout)

    def fetch_configs(self, info: NodeInfo, timeout: float) -> NodeConfigs:
        """GET_CONFIG, asked again at half the timeout (as the reference SDK does)."""
        start = time.monotonic()
        deadline = start + timeout
        label = info.alias or info.address
        for last in (False, True):
            self.check_open()
            data = get_config_request(self.envelope, info.address, self.name)
            self._transport.publish(
                self.topics.payloads_for(info.address), data, qos=1, durable=False
            )
            wait = remaining(deadline) if last else remaining(deadline) / 2
            found = self._configs.wait(info.address, after=start, timeout=wait)
            if found is not None:
                return found
        self.check_open()
        raise NodeTimeoutError(
            f"node {label!r} did not send its pipeline configs within {timeout:g} s",
            node=label,
        )
