"""``IotQueueListener``: messages from an MQTT topic, one item each.

The capture owns its own :class:`~meshops.transport.MqttTransport` (not the node's), since
the broker is often a different one (sensors, another network). The transport reconnects
and re-subscribes by itself, so a broker outage only pauses the data. Its dispatcher thread
only enqueues raw messages; parsing and filtering happen on the capture thread. The queue
is bounded (``MAX_DEQUE_LEN``, default 1000 as the reference): when sensors outpace
``CAP_RESOLUTION`` (default 50/s, as the reference) the oldest message is dropped and
counted in ``dropped``.

Each message becomes ``CaptureItem(data=..., metadata={"topic", "encoding"})``: parsed JSON
(``encoding: "json"``), else the UTF-8 text (``"text"``), else base64 of the bytes
(``"base64"``), so ``data`` always stays JSON-safe. ``MESSAGE_FILTER`` and ``PATH_FILTER``
work as in the reference; messages they reject are counted in ``filtered``.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meshops.capture._mqtt_source import UNSET, MqttSource, resolve_source
from meshops.capture._queue import DropOldestQueue
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.transport import MqttTransport

__all__ = ["IotQueueListenerCapture", "IotQueueListenerConfig", "message_passes"]

log = logging.getLogger(__name__)


class IotQueueListenerConfig(CaptureConfig):
    """Broker keys as the reference (top level or in ``STREAM_CONFIG_METADATA``), or ``URL``.

    Precedence: top-level key, then ``STREAM_CONFIG_METADATA``, then ``URL``
    (``mqtt://[user:pass@]host[:port]/topic``); ``PORT`` defaults to 1883, ``QOS`` to 1.
    """

    host: str | None = None
    port: int | str | None = None
    user: str | None = None
    password: str | None = Field(default=None, alias="PASS", repr=False)
    topic: str | None = None
    qos: int | str | None = None
    secured: bool | str | None = None
    cap_resolution: float = Field(default=50.0, gt=0, le=1000, description="Messages/second.")
    max_deque_len: int = Field(default=1000, ge=1, le=1_000_000, description="Waiting messages.")
    connect_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds to connect.")
    message_filter: dict[str, Any] = Field(
        default_factory=dict, description="Keep messages containing these keys and values."
    )
    path_filter: list[Any] = Field(
        default_factory=lambda: [None, None, None, None],
        description="Per EE_PAYLOAD_PATH level: None (any), a value, or a list of values.",
    )

    @field_validator("host", "port", "user", "password", "topic", "qos", "secured", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return None if value == UNSET else value

    @model_validator(mode="after")
    def _check_source(self) -> Self:
        try:
            self.source()  # a config that cannot name a broker and topic is refused up front
        except ValueError as exc:
            raise PydanticCustomError("mqtt_source", str(exc)) from exc
        return self

    def source(self) -> MqttSource:
        keys = {
            "HOST": self.host,
            "PORT": self.port,
            "USER": self.user,
            "PASS": self.password,
            "TOPIC": self.topic,
            "QOS": self.qos,
            "SECURED": self.secured,
        }
        return resolve_source(self.url, keys, self.stream_config_metadata)


class IotQueueListenerCapture(DataCapture):
    """Subscribes on ``open``, hands each message to the pipeline, unsubscribes on ``close``."""

    TYPE: ClassVar[str] = "IotQueueListener"
    CONFIG: ClassVar[type[CaptureConfig]] = IotQueueListenerConfig
    config: IotQueueListenerConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = self.config.source()
        self._queue: DropOldestQueue[tuple[str, bytes]] = DropOldestQueue(self.config.max_deque_len)
        self._transport: MqttTransport | None = None
        self.filtered = 0
        """Messages received but rejected by ``MESSAGE_FILTER`` or ``PATH_FILTER``."""

    @property
    def dropped(self) -> int:
        """Messages lost because they came faster than the pipeline took them."""
        return self._queue.dropped

    def open(self) -> None:
        src = self.source
        transport = MqttTransport(
            src.host,
            src.port,
            f"meshops-iot-{self.config.name}-{secrets.token_hex(4)}",
            self._on_message,
            username=src.user,
            password=src.password,
            connect_timeout=self.config.connect_timeout,
        )
        transport.subscribe(src.topic, src.qos)
        transport.start(timeout=self.config.connect_timeout)  # raises, and cleans up, on failure
        self._transport = transport
        log.info("capture %s: listening on %s", self.config.name, src.describe())

    def read(self) -> CaptureItem | None:
        while True:
            entry = self._queue.get(self._stop, latest=self.config.live_feed)
            if entry is None:  # stop requested
                return None
            topic, payload = entry
            data, encoding = decode_payload(payload)
            if message_passes(data, self.config.message_filter, self.config.path_filter):
                return CaptureItem(data=data, metadata={"topic": topic, "encoding": encoding})
            self.filtered += 1

    def close(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.stop()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self._queue.put((topic, payload)):
            dropped = self._queue.dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning(
                    "capture %s: queue full (%d); %d messages dropped so far",
                    self.config.name,
                    self.config.max_deque_len,
                    dropped,
                )


def decode_payload(payload: bytes) -> tuple[Any, str]:
    """``(data, encoding)``: JSON if it parses, else UTF-8 text, else base64 text."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


def message_passes(data: Any, message_filter: Mapping[str, Any], path_filter: list[Any]) -> bool:
    """Whether ``data`` satisfies both filters (the reference's semantics).

    ``message_filter``: every key present with an equal value (nested dicts recursively).
    ``path_filter``: for each of the four ``EE_PAYLOAD_PATH`` levels, None accepts
    anything, otherwise the level must equal the value (or one of the list), ignoring case.
    """
    if message_filter and not (isinstance(data, Mapping) and _contains(data, message_filter)):
        return False
    if not any(level is not None for level in path_filter):
        return True
    path = data.get("EE_PAYLOAD_PATH") if isinstance(data, Mapping) else None
    if not isinstance(path, list):
        path = []
    for i, wanted in enumerate(path_filter):
        if wanted is None:
            continue
        options = wanted if isinstance(wanted, list) else [wanted]
        actual = path[i] if i < len(path) else None
        if _fold(actual) not in [_fold(option) for option in options]:
            return False
    return True


def _contains(data: Mapping[str, Any], subset: Mapping[str, Any]) -> bool:
    for key, value in subset.items():
        if key not in data:
            return False
        if isinstance(value, Mapping):
            if not (isinstance(data[key], Mapping) and _contains(data[key], value)):
                return False
        elif data[key] != value:
            return False
    return True


def _fold(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value
