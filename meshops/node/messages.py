"""Everything a node says: heartbeats, the network map, notifications, plugin payloads.

Bodies follow docs/sdk-interop.md (what the ``ratio1`` SDK reads); the envelope, signature
and encryption come from ``meshops.protocol.Envelope``. Payloads and notifications go through
the durable outbox (nothing is lost while the broker is away); heartbeats and the network map
are best-effort, since a newer one replaces a lost one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshops._version import __version__
from meshops.node.instance import CommandOutcome
from meshops.node.machine import MachineState
from meshops.protocol import EventType, NotificationCode
from meshops.protocol.constants import TIMESTAMP_FORMAT

if TYPE_CHECKING:
    from meshops.node.node import Node

__all__ = ["MessageFactory", "encode_compressed"]

log = logging.getLogger(__name__)

ADMIN_PIPELINE = "admin_pipeline"
MAX_LISTED_MODELS = 200
"""A heartbeat names at most this many of the node's models (it must stay small)."""
NET_MON = "NET_MON_01"
NET_CONFIG = "NET_CONFIG_MONITOR"


def encode_compressed(data: Mapping[str, Any]) -> str:
    """base64(zlib level 9(JSON)): the v2 heartbeat's ``ENCODED_DATA``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def now_text() -> str:
    return dt.datetime.now().strftime(TIMESTAMP_FORMAT)


class MessageFactory:
    """Builds and sends one node's messages; counts what it sent."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.machine = MachineState(str(node.settings.home))
        self.payloads_sent = 0
        self._lock = threading.Lock()
        self._session_of: dict[str, str | None] = {}

    # ---- sending -------------------------------------------------------------------------

    def _publish(
        self,
        topic: str,
        event: EventType,
        body: Mapping[str, Any],
        *,
        durable: bool,
        path: list[str | None],
        dest: str | None = None,
        encrypt: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        data = self.node.envelope.encode(
            event, body, path=path, dest=dest, encrypt=encrypt, extra=extra
        )
        self.node.transport.publish(topic, data, qos=1, durable=durable)

    # ---- heartbeat and network map -------------------------------------------------------

    def heartbeat_body(self) -> dict[str, Any]:
        node = self.node
        inner = {
            "EE_ADDR": node.address,
            "EE_ETH_ADDR": node.key.eth_address,
            "EE_WHITELIST": node.allowed_addresses(),
            "SECURED": node.settings.secured,
            "CONFIG_STREAMS": [],  # configs go to allowed senders only, via NET_CONFIG
            "ACTIVE_PLUGINS": [],
            "EE_IS_SUPER": node.settings.supervisor,
            "VERSION": __version__,
            "CURRENT_TIME": now_text(),
            "NR_PIPELINES": len(node.pipelines.names()),
            "MODELS": [m.summary() for m in node.models.list()[:MAX_LISTED_MODELS]],
            "SERVING": node.serving.servers(),
            "MESHOPS_RECEIVED": node.received,
            "MESHOPS_REFUSED": dict(node.refusals),
            **self.machine.sample(),
        }
        return {
            "HEARTBEAT_VERSION": "v2",
            "ENCODED_DATA": encode_compressed(inner),
            "NR_INFERENCES": 0,
            "NR_PAYLOADS": self.payloads_sent,
            "NR_STREAMS_DATA": 0,
        }

    def send_heartbeat(self) -> None:
        self._publish(
            self.node.topics.ctrl,
            EventType.HEARTBEAT,
            self.heartbeat_body(),
            durable=False,
            path=[self.node.alias, None, None, None],
        )

    def send_netmon(self) -> None:
        node = self.node
        body = {
            "STREAM_NAME": ADMIN_PIPELINE,
            "SIGNATURE": NET_MON,
            "INSTANCE_ID": f"{NET_MON}_INST",
            "IS_SUPERVISOR": True,
            "CURRENT_NETWORK": node.network.snapshot(),
        }
        self._publish(
            node.topics.payloads,
            EventType.PAYLOAD,
            body,
            durable=False,
            path=[node.alias, ADMIN_PIPELINE, NET_MON, f"{NET_MON}_INST"],
        )

    def send_net_config(self, requester: str) -> None:
        """The encrypted SET_CONFIG answer to an allowed sender's GET_CONFIG."""
        node = self.node
        body = {
            "STREAM_NAME": ADMIN_PIPELINE,
            "SIGNATURE": NET_CONFIG,
            "INSTANCE_ID": f"{NET_CONFIG}_INST",
            "NET_CONFIG_DATA": {
                "OP": "SET_CONFIG",
                "PIPELINES": list(node.pipelines.configs().values()),
                "PLUGIN_STATUSES": node.pipelines.statuses(),
            },
        }
        self._publish(
            node.topics.payloads_for(requester),
            EventType.PAYLOAD,
            body,
            durable=True,
            path=[node.alias, ADMIN_PIPELINE, NET_CONFIG, f"{NET_CONFIG}_INST"],
            dest=requester,
            encrypt=True,
        )

    # ---- plugin payloads -----------------------------------------------------------------

    def send_payload(
        self, pipeline: str, signature: str, instance_id: str, body: Mapping[str, Any]
    ) -> None:
        fields = {
            "STREAM_NAME": pipeline,
            "SIGNATURE": signature.upper(),
            "INSTANCE_ID": instance_id,
            "TIMESTAMP_EXECUTION": now_text(),
            **body,
        }
        self._publish(
            self.node.topics.payloads,
            EventType.PAYLOAD,
            fields,
            durable=True,
            path=[self.node.alias, pipeline, signature.upper(), instance_id],
        )
        with self._lock:
            self.payloads_sent += 1

    # ---- notifications -------------------------------------------------------------------

    def notify(
        self,
        code: NotificationCode,
        text: str,
        *,
        pipeline: str | None = None,
        signature: str | None = None,
        instance_id: str | None = None,
        session_id: str | None = None,
        info: Any = None,
    ) -> None:
        failed = code < 0
        body = {
            "MODULE": "MeshOpsNode",
            "NOTIFICATION_TYPE": "EXCEPTION" if failed else "NORMAL",
            "NOTIFICATION_CODE": int(code),
            "NOTIFICATION": text,
            "INFO": info if info is not None else (text if failed else None),
            "STREAM_NAME": pipeline,
            "SIGNATURE": signature,
            "INSTANCE_ID": instance_id,
            "DISPLAYED": True,
            "TIMESTAMP": now_text(),
        }
        extra = {"SESSION_ID": session_id} if session_id else None
        self._publish(
            self.node.topics.notif,
            EventType.NOTIFICATION,
            body,
            durable=True,
            path=[self.node.alias, pipeline, signature, instance_id],
            extra=extra,
        )

    def notify_pipeline_failed(self, pipeline: str, reason: str) -> None:
        self.notify(NotificationCode.PIPELINE_FAILED, reason, pipeline=pipeline)

    def instance_error(self, pipeline: str, signature: str, instance_id: str, message: str) -> None:
        self.send_payload(pipeline, signature, instance_id, {"ERROR": message, "IS_ERROR": True})

    def serving_event(self, kind: str, details: Mapping[str, Any]) -> None:
        """A model server started, crashed (and is restarted), failed or stopped."""
        engine = details.get("ENGINE")
        if kind == "started":
            text = f"model server {engine} ready (pid {details.get('PID')})"
            if details.get("RESTARTS"):
                text += f" after {details['RESTARTS']} restart(s)"
            self.notify(NotificationCode.SERVING_START_OK, text, info=dict(details))
        elif kind in ("crashed", "failed"):
            text = f"model server {engine} {kind}: {details.get('ERROR')}"
            log.warning("node %s: %s", self.node.alias, text)
            self.notify(NotificationCode.SERVING_START_FAILED, text, info=dict(details))
        else:
            log.info("node %s: model server %s %s", self.node.alias, engine, kind)

    def capture_error(self, pipeline: str, message: str) -> None:
        self.notify(NotificationCode.PIPELINE_DATA_FAILED, message, pipeline=pipeline)

    def command_done(
        self, pipeline: str, signature: str, instance_id: str, outcome: CommandOutcome
    ) -> None:
        code = (
            NotificationCode.PLUGIN_INSTANCE_COMMAND_OK
            if outcome.ok
            else NotificationCode.PLUGIN_INSTANCE_COMMAND_FAILED
        )
        self.notify(
            code, outcome.info, pipeline=pipeline, signature=signature, instance_id=instance_id
        )
