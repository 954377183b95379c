"""Shared helpers for the node tests: a node on a broker, a signing client, decoders.

- :func:`running_node`: a :class:`Node` on a broker, with its own home; stopped afterwards.
- :class:`Client`: a sender with its own :class:`NodeKey`. It builds commands the way the
  ``ratio1`` SDK sends them (``EE_ID`` and ``EE_DEST`` naming the node, body encrypted to it),
  publishes them with an :class:`MqttTransport`, and collects what nodes publish on
  ``<root>/notif``, ``<root>/payloads`` and ``<root>/ctrl`` (verified, parsed).
- :func:`decode_heartbeat`: a heartbeat's fields with the v2 ``ENCODED_DATA`` opened,
  written from PROTOCOL.md rather than borrowed from the node's code.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as dt
import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshops.errors import MessageRefused
from meshops.node import Node, NodeSettings
from meshops.protocol import (
    DEFAULT_ROOT_TOPIC,
    TIMESTAMP_FORMAT,
    Envelope,
    Message,
    NodeKey,
    Topics,
    encode_message,
    encrypt,
    parse_message,
    sign_message,
)
from meshops.transport import MqttTransport
from tests.waiting import wait_until  # noqa: F401 - used here and by the node tests

__all__ = [
    "Client",
    "Seen",
    "decode_heartbeat",
    "echo_pipeline",
    "no_leaked_threads",
    "refusal_delta",
    "running_node",
    "wait_until",
]

HOST = "127.0.0.1"


def echo_pipeline(
    name: str, instance_id: str = "e1", *, delay: float = 0.2, **instance: Any
) -> dict[str, Any]:
    """A ``Void`` pipeline with one ``ECHO_01`` instance that emits a payload every ``delay`` s."""
    return {
        "NAME": name,
        "TYPE": "Void",
        "PLUGINS": [
            {
                "SIGNATURE": "ECHO_01",
                "INSTANCES": [
                    {
                        "INSTANCE_ID": instance_id,
                        "ALLOW_EMPTY_INPUTS": True,
                        "PROCESS_DELAY": delay,
                        **instance,
                    }
                ],
            }
        ],
    }


def refusal_delta(node: Node, before: Mapping[str, int]) -> dict[str, int]:
    """Refusals counted by ``node`` since the snapshot ``before`` (``dict(node.refusals)``)."""
    now = dict(node.refusals)
    delta = {k: now.get(k, 0) - before.get(k, 0) for k in set(now) | set(before)}
    return {k: v for k, v in delta.items() if v}


# ---- threads ------------------------------------------------------------------------------


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread it started running (import it into a test module)."""
    before = set(threading.enumerate())
    yield
    leaked: list[threading.Thread] = []

    def settled() -> bool:
        leaked[:] = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        return not leaked

    wait_until(settled, 5.0, 0.05)
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"


# ---- a node -------------------------------------------------------------------------------


@contextlib.contextmanager
def running_node(
    broker_url: str, home: Path, *, alias: str = "n1", **settings: Any
) -> Iterator[Node]:
    """A started :class:`Node` (secured unless told otherwise, 1 s heartbeats); stopped after.

    The node is connected when this yields; use :meth:`Client.wait_listening` to be sure its
    subscriptions are active before counting what it receives.
    """
    values: dict[str, Any] = {"heartbeat_interval_s": 1.0, **settings}
    node = Node(NodeSettings(home=home, alias=alias, broker=broker_url, **values))
    node.start()
    try:
        if not node.transport.wait_connected(10.0):
            raise AssertionError(f"node {alias} did not connect to {broker_url}")
        yield node
    finally:
        node.stop()


# ---- heartbeats ---------------------------------------------------------------------------


def decode_heartbeat(message: Message) -> dict[str, Any]:
    """The heartbeat's fields; for ``HEARTBEAT_VERSION: v2`` the inner JSON is merged in."""
    body = dict(message.body)
    if body.get("HEARTBEAT_VERSION") == "v2":
        inner = json.loads(zlib.decompress(base64.b64decode(body["ENCODED_DATA"])))
        assert isinstance(inner, dict), "ENCODED_DATA must hold a JSON object"
        body.update(inner)
    return body


# ---- a client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One message a client received: its topic, bytes, and the parsed message."""

    topic: str
    data: bytes
    message: Message
    at: float


class Client:
    """A signing MQTT client with its own key, to command nodes and watch what they say.

    Everything received on ``<root>/notif``, ``<root>/payloads``, ``<root>/ctrl`` (and this
    client's own payloads topic) is verified with ``parse_message`` and kept in order; what
    fails to parse is counted in ``unparsed``. Use ``mark()`` and ``since=`` to look only at
    what arrived after some step.
    """

    def __init__(
        self,
        broker_port: int,
        *,
        key: NodeKey | None = None,
        alias: str = "tester",
        root: str = DEFAULT_ROOT_TOPIC,
        listen: bool = True,
    ) -> None:
        self.key = key or NodeKey.generate()
        self.address = self.key.address
        self.alias = alias
        self.envelope = Envelope(self.key, alias=alias)
        self.topics = Topics(root)
        self.seen: list[Seen] = []
        self.unparsed: collections.Counter[str] = collections.Counter()
        self._cond = threading.Condition()
        self.transport = MqttTransport(
            HOST,
            broker_port,
            client_id=f"test-{alias}-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message,
        )
        if listen:
            for topic in (
                self.topics.notif,
                self.topics.payloads,
                self.topics.ctrl,
                self.topics.payloads_for(self.address),
            ):
                self.transport.subscribe(topic, qos=1)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Client:
        self.transport.start(timeout=10.0)
        return self

    def stop(self) -> None:
        self.transport.stop(timeout=5.0)

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- receiving ---------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            message = parse_message(payload, own_key=self.key)
        except MessageRefused as exc:
            self.unparsed[str(exc.reason)] += 1
            return
        with self._cond:
            self.seen.append(Seen(topic, payload, message, time.monotonic()))
            self._cond.notify_all()

    def mark(self) -> int:
        """A position in ``seen``: pass it as ``since`` to look only at later messages."""
        with self._cond:
            return len(self.seen)

    def messages(
        self,
        *,
        since: int = 0,
        topic: str | None = None,
        sender: str | None = None,
        where: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        with self._cond:
            items = self.seen[since:]
        return [
            s.message
            for s in items
            if (topic is None or s.topic == topic)
            and (sender is None or s.message.sender == sender)
            and (where is None or where(s.message))
        ]

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 10.0,
        **filters: Any,
    ) -> list[Message]:
        """Wait until ``messages(**filters)`` holds ``count`` messages; return those found."""
        found: list[Message] = []

        def enough() -> bool:
            found[:] = self.messages(**filters)
            return len(found) >= count

        with self._cond:
            self._cond.wait_for(enough, timeout)
        return list(found)

    def notifications(self, node: Node | str, **filters: Any) -> list[Message]:
        return self.messages(topic=self.topics.notif, sender=_address(node), **filters)

    def wait_notification(
        self,
        node: Node | str,
        code: int,
        pipeline: str | None = None,
        *,
        since: int = 0,
        timeout: float = 10.0,
    ) -> Message | None:
        """The first notification ``code`` from ``node`` (about ``pipeline``) after ``since``."""
        found = self.wait_for(
            1,
            timeout,
            since=since,
            topic=self.topics.notif,
            sender=_address(node),
            where=lambda m: (
                m.body.get("NOTIFICATION_CODE") == code
                and (pipeline is None or m.path[1] == pipeline)
            ),
        )
        return found[0] if found else None

    def payloads(
        self, node: Node | str, pipeline: str | None = None, *, since: int = 0
    ) -> list[Message]:
        """Plugin payloads of ``node`` (of ``pipeline``) on ``<root>/payloads``."""
        return self.messages(
            since=since,
            topic=self.topics.payloads,
            sender=_address(node),
            where=lambda m: (
                m.path[1] != "admin_pipeline" and (pipeline is None or m.path[1] == pipeline)
            ),
        )

    def wait_payloads(
        self,
        node: Node | str,
        pipeline: str,
        count: int = 1,
        *,
        since: int = 0,
        timeout: float = 10.0,
    ) -> list[Message]:
        return self.wait_for(
            count,
            timeout,
            since=since,
            topic=self.topics.payloads,
            sender=_address(node),
            where=lambda m: m.path[1] == pipeline,
        )

    def heartbeats(self, node: Node | str, *, since: int = 0) -> list[dict[str, Any]]:
        """``node``'s heartbeats after ``since``, decoded."""
        return [
            decode_heartbeat(m)
            for m in self.messages(since=since, topic=self.topics.ctrl, sender=_address(node))
        ]

    def wait_heartbeat(
        self, node: Node | str, *, since: int = 0, timeout: float = 10.0
    ) -> dict[str, Any] | None:
        found = self.wait_for(
            1, timeout, since=since, topic=self.topics.ctrl, sender=_address(node)
        )
        return decode_heartbeat(found[-1]) if found else None

    # ---- building commands ---------------------------------------------------------------------

    def command(
        self,
        node: Node | str,
        action: str,
        payload: Any = None,
        *,
        encrypt: bool = True,
        session: str = "s1",
        ee_id: str | None = None,
        dest: str | list[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A signed command for ``node``, built with our ``Envelope`` (as a MeshOps client).

        ``EE_ID`` names the node by address (as the SDK does) unless ``ee_id`` says otherwise;
        the body is encrypted to ``dest`` (default: the node) unless ``encrypt=False``.
        The envelope adds ``EE_TIMESTAMP`` with ``EE_TZ``, so freshness applies.
        """
        address = _address(node)
        body = {"ACTION": action, "PAYLOAD": payload}
        fields = {
            "EE_ID": address if ee_id is None else ee_id,
            "SESSION_ID": session,
            "INITIATOR_ID": session,
            **(extra or {}),
        }
        return self.envelope.build(
            "COMMAND",
            body,
            dest=dest if dest is not None else (address if encrypt else None),
            encrypt=encrypt,
            extra=fields,
        )

    def sdk_command(
        self,
        node: Node | str,
        action: str,
        payload: Any = None,
        *,
        session: str = "s1",
        time_text: str | None = None,
    ) -> dict[str, Any]:
        """A command exactly as the ``ratio1`` SDK sends one (docs/sdk-interop.md section 10).

        No ``EE_TIMESTAMP``/``EE_TZ``: only ``TIME`` in the sender's local time, no zone, so a
        node cannot judge its age. The ``EE_ETH_SIGN`` is the SDK's placeholder.
        """
        address = _address(node)
        body = {
            "ACTION": action,
            "PAYLOAD": payload,
            "SESSION_ID": session,
            "INITIATOR_ID": session,
        }
        when = time_text or dt.datetime.now().strftime(TIMESTAMP_FORMAT)
        msg = {
            "EE_IS_ENCRYPTED": True,
            "EE_ENCRYPTED_DATA": encrypt(
                json.dumps(body, separators=(",", ":")), address, self.key
            ),
            "EE_DEST": address,
            "EE_ID": address,
            "SESSION_ID": session,
            "INITIATOR_ID": session,
            "TIME": when,
        }
        return sign_message(msg, self.key, eth_sign=False)

    # ---- sending --------------------------------------------------------------------------------

    def send(
        self,
        node: Node | str,
        data: bytes | Mapping[str, Any],
        *,
        topic: str | None = None,
        qos: int = 1,
    ) -> bytes:
        """Publish ``data`` (bytes, or a message dict to encode) on ``node``'s config topic."""
        raw = data if isinstance(data, bytes) else encode_message(data)
        self.transport.publish(
            topic or self.topics.config(_address(node)), raw, qos=qos, durable=False
        )
        return raw

    def deploy(
        self,
        node: Node | str,
        config: Mapping[str, Any],
        *,
        session: str = "s1",
        timeout: float = 10.0,
    ) -> bytes:
        """Send ``UPDATE_CONFIG``; wait, as the SDK's ``deploy()`` does, for PIPELINE_OK (1)
        and a PLUGIN_CONFIG_OK (100) per instance in ``config``; return the bytes sent."""
        mark = self.mark()
        name = config["NAME"]
        sent = self.send(node, self.command(node, "UPDATE_CONFIG", dict(config), session=session))
        expected = {(1, None, None)} | {
            (100, plugin["SIGNATURE"].upper(), inst["INSTANCE_ID"])
            for plugin in config.get("PLUGINS", [])
            for inst in plugin.get("INSTANCES", [])
        }

        def done(m: Message) -> bool:
            return m.path[1] == name and (
                (m.body.get("NOTIFICATION_CODE"), m.path[2], m.path[3]) in expected
            )

        found = self.wait_for(
            len(expected),
            timeout,
            since=mark,
            topic=self.topics.notif,
            sender=_address(node),
            where=done,
        )
        if len(found) < len(expected):
            got = self.notifications(node, since=mark)
            raise AssertionError(
                f"deploy of {name!r} not confirmed; got "
                f"{[(m.body.get('NOTIFICATION_CODE'), m.body.get('NOTIFICATION')) for m in got]}"
            )
        return sent

    def wait_listening(self, node: Node, timeout: float = 10.0) -> None:
        """Make sure ``node`` receives what we publish on its config topic.

        Publishes a junk probe until the node counts one received message more (a probe
        is refused as ``bad_json``: take refusal snapshots after this).
        """
        deadline = time.monotonic() + timeout
        start = node.received
        while time.monotonic() < deadline:
            self.send(node, b"probe")
            if wait_until(lambda: node.received > start, 0.5):
                # probes still in flight must land before the caller takes a snapshot
                last = -1
                while node.received != last:
                    last = node.received
                    time.sleep(0.2)
                return
        raise AssertionError(f"node {node.alias} does not receive on its config topic")


def _address(node: Node | str) -> str:
    return node if isinstance(node, str) else node.address
