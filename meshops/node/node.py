"""The edge node: the process that runs on every device.

It owns, and stops, everything it starts: the MQTT transport (with its outbox), the
pipeline manager (captures and plugin instances), the heartbeat thread and, on a
supervisor, the network monitor. Every message that arrives goes through ``_on_message``:
verified, decrypted, checked for freshness and replay (``parse_message`` with the
persisted seen-set), authorized, then handled. Nothing a message contains can crash the
node: each refusal is counted by reason and reported in the heartbeat.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any

from meshops._version import __version__
from meshops.errors import MeshOpsError, MessageRefused, RefusalReason
from meshops.node.availability import EpochOracle, oracle_topic
from meshops.node.commands import CommandHandler
from meshops.node.messages import MessageFactory
from meshops.node.netmon import NetworkMap
from meshops.node.pipelines import PipelineEvents, PipelineManager
from meshops.node.settings import NodeSettings
from meshops.node.store import NodeStore
from meshops.plugins.registry import load_captures, load_plugins
from meshops.protocol import Envelope, EventType, Message, NodeKey, Topics, parse_message
from meshops.protocol.constants import STREAM_FIELD
from meshops.serving import ModelRegistry, ServingManager
from meshops.transport import MqttTransport, Outbox

__all__ = ["Node", "load_or_create_key"]

log = logging.getLogger(__name__)


def load_or_create_key(path: Path) -> NodeKey:
    """The node's identity: the key at ``path``, created (mode 0600) on first start."""
    if path.exists():
        return NodeKey.load(path)
    key = NodeKey.generate()
    key.save(path)
    log.info("created a new node key at %s: %s", path, key.address)
    return key


class Node:
    """One MeshOps edge node. ``start()``, then ``stop()``; or ``run_until(event)``."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = load_or_create_key(settings.key_path)
        self.address = self.key.address
        self.alias = settings.alias
        self.topics = Topics(settings.root_topic)
        self.envelope = Envelope(self.key, alias=settings.alias, version=__version__)
        self.store = NodeStore(settings.db_path, replay_window_s=settings.replay_window_s)
        self.outbox = Outbox(settings.outbox_path)
        self.refusals: collections.Counter[str] = collections.Counter()
        self.received = 0
        self.messages = MessageFactory(self)
        host, port = settings.broker_address
        self.transport = MqttTransport(
            host,
            port,
            client_id=f"meshops-{settings.alias}-{self.address[-10:]}",
            on_message=self._on_message,
            outbox=self.outbox,
            username=settings.broker_user,
            password=settings.broker_password,
        )
        self.models = ModelRegistry(settings.models_path)
        self.serving = ServingManager(self.models, on_event=self.messages.serving_event)
        self.pipelines = PipelineManager(
            settings.alias,
            load_plugins(),
            load_captures(),
            PipelineEvents(
                emit=self.messages.send_payload,
                instance_error=self.messages.instance_error,
                capture_error=self.messages.capture_error,
                command_done=self.messages.command_done,
            ),
            node_address=self.address,
            serving=self.serving,
        )
        self.network = NetworkMap(self)
        self.commands = CommandHandler(self)
        self.oracle = EpochOracle.for_node(self) if settings.is_oracle else None
        self._stop = threading.Event()
        self.stop_requested = threading.Event()
        """Set by a STOP command; ``run_until`` returns when it is."""
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- who may command this node -------------------------------------------------------

    def allowed_addresses(self) -> list[str]:
        return sorted(self.store.allowed())

    def is_allowed(self, address: str) -> bool:
        """Owner (this node's own key) and the allow-list; everyone when not secured."""
        if not self.settings.secured or address == self.address:
            return True
        return address in self.store.allowed()

    def names_me(self, value: object) -> bool:
        """Whether a command's ``EE_ID`` designates this node (alias, 0xai or eth address)."""
        return isinstance(value, str) and value in {
            self.alias,
            self.address,
            self.key.eth_address,
            self.address.removeprefix("0xai_"),
        }

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self.restore_pipelines()
        for topic in (self.topics.config(self.address), self.topics.payloads_for(self.address)):
            self.transport.subscribe(topic, qos=2 if topic.endswith("/config") else 1)
        if self.settings.supervisor or self.oracle is not None:
            self.transport.subscribe(self.topics.ctrl, qos=1)
        if self.oracle is not None:
            self.transport.subscribe(oracle_topic(self.settings.root_topic), qos=1)
        self.transport.start(timeout=timeout, wait=False)
        self._spawn("heartbeat", self._heartbeat_loop)
        if self.settings.supervisor:
            self._spawn("netmon", self._netmon_loop)
        if self.oracle is not None:
            self._spawn("epochs", self._epoch_loop)
        log.info(
            "node %s (%s) started%s",
            self.alias,
            self.address,
            " as supervisor" if self.settings.supervisor else "",
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything this node started; the outbox keeps what was not yet delivered."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.pipelines.stop_all()
        self.serving.stop_all()
        self.models.close()
        self.transport.flush(timeout=min(timeout, 3.0))
        self.transport.stop(timeout=timeout)
        self.outbox.close()
        self.store.close()
        log.info("node %s stopped", self.alias)

    def request_stop(self) -> None:
        self.stop_requested.set()

    def run_until(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (a signal) or a STOP command arrives."""
        self.start()
        try:
            while not (stop.wait(0.5) or self.stop_requested.is_set()):
                pass
        finally:
            self.stop()

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=f"meshops-{name}-{self.alias}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def restore_pipelines(self) -> None:
        for name, config in self.store.pipelines().items():
            try:
                self.pipelines.apply(config, store=lambda _: None)
                log.info("restored pipeline %s", name)
            except MeshOpsError as exc:
                log.error("cannot restore pipeline %s: %s", name, exc)
                self.messages.notify_pipeline_failed(name, f"restore failed: {exc}")

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.send_heartbeat()
            except Exception:
                log.exception("node %s: heartbeat failed", self.alias)
            self._stop.wait(self.settings.heartbeat_interval_s)

    def _netmon_loop(self) -> None:
        while not self._stop.wait(min(self.settings.netmon_interval_s, 1.0)):
            try:
                self.messages.send_netmon()
            except Exception:
                log.exception("node %s: network map failed", self.alias)
            self._stop.wait(max(self.settings.netmon_interval_s - 1.0, 0))

    def _epoch_loop(self) -> None:
        assert self.oracle is not None
        while not self._stop.wait(0.2):
            try:
                self.oracle.tick()
            except Exception:
                log.exception("node %s: epoch oracle failed", self.alias)

    # ---- intake --------------------------------------------------------------------------

    def refuse(self, reason: RefusalReason | str, detail: str, topic: str) -> None:
        self.refusals[str(reason)] += 1
        log.info("node %s refused a message on %s: %s: %s", self.alias, topic, reason, detail)

    def _on_message(self, topic: str, payload: bytes) -> None:
        """Every message from the broker; never raises (a node must not die of a message)."""
        self.received += 1
        try:
            self._handle(topic, payload)
        except MessageRefused as exc:
            self.refuse(exc.reason, exc.detail, topic)
        except Exception as exc:  # a bug in a handler: count it, keep the node up
            self.refuse("internal_error", f"{type(exc).__name__}: {exc}", topic)
            log.exception("node %s: error handling a message on %s", self.alias, topic)

    def _parse(self, payload: bytes) -> Message:
        """Verify, decrypt and age-check one message; replay is checked after authorization."""
        message = parse_message(
            payload,
            own_key=self.key,
            max_age_s=self.settings.replay_window_s,
            future_skew_s=self.settings.future_skew_s,
        )
        if STREAM_FIELD in message.raw:
            # the node takes no reliable streams on these topics, so nothing would check the
            # sequence that exempts such a message from the age and replay checks
            raise MessageRefused(RefusalReason.BAD_FIELD, f"{STREAM_FIELD} is not taken here")
        return message

    def check_replay(self, message: Message) -> None:
        """Refuse a message seen before. Called once the sender is known to be allowed, so
        strangers cannot fill the seen-set; messages without a zoned timestamp (SDK commands)
        cannot be refused on age, so they are remembered for ``replay_memory_s``."""
        zoned = "EE_TIMESTAMP" in message.raw and "EE_TZ" in message.raw
        keep = None if zoned else self.settings.replay_memory_s
        if not self.store.check_and_remember(message.hash, time.time(), keep_s=keep):
            raise MessageRefused(RefusalReason.REPLAYED, f"hash {message.hash[:16]}... seen before")

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.ctrl:
            heartbeat = parse_message(payload, own_key=self.key)
            self.network.on_heartbeat(heartbeat)
            if self.oracle is not None and heartbeat.event_type == EventType.HEARTBEAT:
                self.oracle.on_heartbeat(heartbeat)
            return
        message = self._parse(payload)
        if self.oracle is not None and topic == oracle_topic(self.settings.root_topic):
            self.oracle.on_message(message)
            return
        if topic == self.topics.config(self.address):
            self.commands.handle(message)
        elif topic == self.topics.payloads_for(self.address):
            self.commands.handle_payload(message)
        else:
            self.refuse(RefusalReason.NOT_FOR_ME, "topic not handled", topic)
