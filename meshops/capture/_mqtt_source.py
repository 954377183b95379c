"""Where an ``IotQueueListener`` listens: broker and topic from the pipeline config.

The reference reads ``HOST``, ``PORT``, ``USER``, ``PASS``, ``TOPIC``, ``QOS`` and
``SECURED`` as top-level pipeline keys or inside ``STREAM_CONFIG_METADATA`` (a top-level key
wins; ``"#DEFAULT"`` means "not set"). MeshOps also takes ``URL: mqtt://[user:pass@]host
[:port]/topic`` as the lowest-priority source, so one string can name the whole source.
This module is pure: it turns those values into an :class:`MqttSource` or a ``ValueError``
naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from meshops.transport import validate_filter

__all__ = ["DEFAULT_PORT", "UNSET", "MqttSource", "parse_mqtt_url", "resolve_source"]

DEFAULT_PORT = 1883
UNSET = "#DEFAULT"
"""The reference's placeholder for "use the node's own broker setting"."""

_KEYS = ("HOST", "PORT", "USER", "PASS", "TOPIC", "QOS", "SECURED")


@dataclass(frozen=True)
class MqttSource:
    host: str
    port: int
    topic: str
    qos: int = 1
    user: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """For logs: never the password."""
        return f"mqtt://{self.host}:{self.port}/{self.topic} (QoS {self.qos})"


def parse_mqtt_url(url: str) -> dict[str, Any]:
    """``HOST``/``PORT``/``USER``/``PASS``/``TOPIC`` from ``mqtt://user:pass@host:port/topic``.

    The topic is everything after the first ``/`` taken verbatim, so the ``#`` and ``+``
    wildcards work even though ``#`` would start a fragment in an ordinary URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("mqtts", "ssl"):
        raise ValueError("URL: TLS (mqtts://) is not supported by the MeshOps transport yet")
    if scheme not in ("mqtt", "tcp"):
        raise ValueError(f"URL: expected mqtt://host:port/topic, not {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL: bad port in {url!r}") from exc
    found: dict[str, Any] = {
        "HOST": parts.hostname,
        "PORT": port,
        "USER": unquote(parts.username) if parts.username else None,
        "PASS": unquote(parts.password) if parts.password else None,
        "TOPIC": unquote(url.split("://", 1)[1].partition("/")[2]) or None,
    }
    return {key: value for key, value in found.items() if value is not None}


def resolve_source(
    url: str | None, keys: Mapping[str, Any], metadata: Mapping[str, Any]
) -> MqttSource:
    """The source from top-level ``keys``, then ``metadata``, then ``url``; else ValueError."""
    merged: dict[str, Any] = parse_mqtt_url(url) if url else {}
    for layer in (metadata, keys):
        for key in _KEYS:
            value = layer.get(key)
            if value is not None and value != UNSET:
                merged[key] = value
    if _truthy(merged.get("SECURED")):
        raise ValueError("SECURED: TLS is not supported by the MeshOps transport yet")
    host = merged.get("HOST")
    if not isinstance(host, str) or not host:
        raise ValueError(
            "HOST: no broker given; set URL (mqtt://host:port/topic), HOST, or "
            "STREAM_CONFIG_METADATA.HOST"
        )
    topic = merged.get("TOPIC")
    if not isinstance(topic, str) or not topic:
        raise ValueError("TOPIC: no topic given; set it in URL, TOPIC or STREAM_CONFIG_METADATA")
    try:
        validate_filter(topic)
    except ValueError as exc:
        raise ValueError(f"TOPIC: {exc}") from exc
    return MqttSource(
        host=host,
        port=_int_in("PORT", merged.get("PORT", DEFAULT_PORT), 1, 65535),
        topic=topic,
        qos=_int_in("QOS", merged.get("QOS", 1), 0, 2),
        user=_optional_str("USER", merged.get("USER")),
        password=_optional_str("PASS", merged.get("PASS")),
    )


def _int_in(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}: expected an integer, got {value!r}") from exc
    if isinstance(value, bool) or not low <= number <= high or str(number) != str(value).strip():
        raise ValueError(f"{key}: must be an integer from {low} to {high}, got {value!r}")
    return number


def _optional_str(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{key}: expected a string, got {type(value).__name__}")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().upper() in {"TRUE", "YES", "Y", "1"}
    return bool(value)
