"""The transport part: MQTT client, persisted outbox, reliable streams, brokers.

- :class:`MqttTransport`: paho-mqtt 2.x with TCP_NODELAY, re-subscription, a dispatcher
  thread and a persisted :class:`Outbox` for durable publishes.
- :class:`ReliableSender` / :class:`ReliableReceiver`: end-to-end acknowledged, in-order,
  exactly-once streams to one receiver, surviving broker crashes and restarts.
- :class:`EmbeddedBroker` (amqtt, pure Python) and :class:`MosquittoBroker` (a child
  process, for tests and benchmarks); :func:`run_broker` runs the embedded one in the
  foreground.
- :class:`SignedCodec`: plugs signed, verified protocol envelopes into the reliable streams.
- :class:`MemoryBus`: an in-memory bus for unit tests only.
"""

from meshops.transport.base import MessageHandler, Transport
from meshops.transport.broker import EmbeddedBroker, run_broker
from meshops.transport.matching import topic_matches, validate_filter, validate_topic
from meshops.transport.memory import MemoryBus, MemoryTransport
from meshops.transport.mosquitto import MosquittoBroker, find_mosquitto
from meshops.transport.mqtt import MqttTransport
from meshops.transport.outbox import Outbox, OutboxMessage, StreamState
from meshops.transport.reliable import (
    ACK_KEY,
    STREAM_KEY,
    ReliableReceiver,
    ReliableSender,
    ack_body,
    parse_ack,
    parse_stream_header,
    stream_header,
)
from meshops.transport.signed import SignedCodec

__all__ = [
    "ACK_KEY",
    "STREAM_KEY",
    "EmbeddedBroker",
    "MemoryBus",
    "MemoryTransport",
    "MessageHandler",
    "MosquittoBroker",
    "MqttTransport",
    "Outbox",
    "OutboxMessage",
    "ReliableReceiver",
    "ReliableSender",
    "SignedCodec",
    "StreamState",
    "Transport",
    "ack_body",
    "find_mosquitto",
    "parse_ack",
    "parse_stream_header",
    "run_broker",
    "stream_header",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]
