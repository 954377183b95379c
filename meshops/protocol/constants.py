"""Named constants of the wire protocol: topics, event types, commands, notification codes.

Values are those of the Naeural/Ratio1 edge protocol (see shared PROTOCOL.md).
"""

from __future__ import annotations

import enum

__all__ = [
    "ACK_FIELD",
    "DEFAULT_ROOT_TOPIC",
    "MAX_MESSAGE_BYTES",
    "STREAM_FIELD",
    "TIMESTAMP_FORMAT",
    "Channel",
    "Command",
    "EventType",
    "NotificationCode",
    "Topics",
]

DEFAULT_ROOT_TOPIC = "naeural"
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
"""The reference caps one message at 2 MB; larger ones are refused unread."""

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

STREAM_FIELD = "MESHOPS_STREAM"
"""Clear, signed field ``{"ID": stream id, "SEQ": n}`` of a message in a reliable stream
(MeshOps only; the reference ignores it). The receiver delivers each (sender, stream, seq)
once, persistently, so the sequence, not the clock or the hash set, guards against replay."""

ACK_FIELD = "MESHOPS_ACK"
"""Body ``{"ID": stream id, "SEQ": n}`` of a cumulative ack: ``n`` and all before it arrived."""


class EventType(enum.StrEnum):
    HEARTBEAT = "HEARTBEAT"
    PAYLOAD = "PAYLOAD"
    NOTIFICATION = "NOTIFICATION"


class Channel(enum.StrEnum):
    """The protocol's channels, each with its own topic pattern and QoS."""

    CTRL = "ctrl"
    CONFIG = "config"
    PAYLOADS = "payloads"
    NOTIF = "notif"

    @property
    def qos(self) -> int:
        return _CHANNEL_QOS[self]


_CHANNEL_QOS = {Channel.CTRL: 1, Channel.CONFIG: 2, Channel.PAYLOADS: 1, Channel.NOTIF: 1}


class Topics:
    """Topic names under one root (``naeural`` unless the network says otherwise)."""

    def __init__(self, root: str = DEFAULT_ROOT_TOPIC) -> None:
        if not root or any(c in root for c in "#+\x00"):
            raise ValueError(f"invalid MQTT root topic {root!r}")
        self.root = root

    @property
    def ctrl(self) -> str:
        return f"{self.root}/ctrl"

    @property
    def notif(self) -> str:
        return f"{self.root}/notif"

    @property
    def payloads(self) -> str:
        return f"{self.root}/payloads"

    def config(self, node_address: str) -> str:
        return f"{self.root}/{node_address}/config"

    def payloads_for(self, address: str) -> str:
        return f"{self.root}/{address}/payloads"

    def acks_for(self, address: str) -> str:
        """MeshOps-only topic where receivers acknowledge reliable streams to their sender."""
        return f"{self.root}/{address}/acks"


class Command(enum.StrEnum):
    UPDATE_CONFIG = "UPDATE_CONFIG"
    DELETE_CONFIG = "DELETE_CONFIG"
    ARCHIVE_CONFIG = "ARCHIVE_CONFIG"
    UPDATE_PIPELINE_INSTANCE = "UPDATE_PIPELINE_INSTANCE"
    BATCH_UPDATE_PIPELINE_INSTANCE = "BATCH_UPDATE_PIPELINE_INSTANCE"
    PIPELINE_COMMAND = "PIPELINE_COMMAND"
    STOP = "STOP"
    RESTART = "RESTART"
    FULL_HEARTBEAT = "FULL_HEARTBEAT"
    ARCHIVE_CONFIG_ALL = "ARCHIVE_CONFIG_ALL"
    DELETE_CONFIG_ALL = "DELETE_CONFIG_ALL"
    MODEL_UPLOAD = "MODEL_UPLOAD"
    """MeshOps only: a model sent in chunks to the node's registry (see meshops.serving)."""


class NotificationCode(enum.IntEnum):
    """Codes as the reference numbers them: pipelines 1-99, plugins 100-999, comms 1000+."""

    PIPELINE_OK = 1
    PIPELINE_FAILED = -1
    PIPELINE_DATA_OK = 2
    PIPELINE_DATA_FAILED = -2
    PIPELINE_DCT_CONFIG_OK = 3
    PIPELINE_DCT_CONFIG_FAILED = -3
    PIPELINE_ARCHIVE_OK = 4
    PIPELINE_ARCHIVE_FAILED = -4
    PLUGIN_CONFIG_OK = 100
    PLUGIN_CONFIG_FAILED = -100
    PLUGIN_INSTANCE_COMMAND_OK = 101
    PLUGIN_INSTANCE_COMMAND_FAILED = -101
    PLUGIN_PAUSE_OK = 110
    PLUGIN_PAUSE_FAILED = -110
    PLUGIN_RESUME_OK = 111
    PLUGIN_RESUME_FAILED = -111
    PLUGIN_DELAYED = -999
    COMMS_OK = 1000
    COMM_RECEIVED_BAD_COMMAND = -5000
    SERVING_START_OK = 10000
    SERVING_START_FAILED = -10000
    MODEL_STORED_OK = 10100
    """MeshOps only: a model sent with MODEL_UPLOAD is stored, verified, and registered."""
    MODEL_STORED_FAILED = -10100
