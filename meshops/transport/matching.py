"""MQTT topic names and filters: validation and wildcard matching.

The in-memory bus and the dispatcher both route by filter, so they share this one
implementation of the MQTT 3.1.1 rules (section 4.7): ``+`` matches one level, ``#``
matches the rest (including the parent level), and filters starting with a wildcard
never match topics starting with ``$``.
"""

from __future__ import annotations

__all__ = ["topic_matches", "validate_filter", "validate_topic"]


def validate_topic(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` is a valid name to publish on."""
    if not topic or "\x00" in topic:
        raise ValueError(f"invalid MQTT topic {topic!r}")
    if "+" in topic or "#" in topic:
        raise ValueError(f"wildcards are not allowed in a topic name: {topic!r}")


def validate_filter(topic_filter: str) -> None:
    """Raise ``ValueError`` unless ``topic_filter`` is a valid subscription filter."""
    if not topic_filter or "\x00" in topic_filter:
        raise ValueError(f"invalid MQTT topic filter {topic_filter!r}")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole, last level: {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {topic_filter!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a message published on ``topic`` matches ``topic_filter``."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)
