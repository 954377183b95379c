"""MQTT topic filters: the rules the dispatcher and the in-memory bus route by."""

from __future__ import annotations

import pytest

from meshops.transport import topic_matches, validate_filter, validate_topic


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("naeural/ctrl", "naeural/ctrl", True),
        ("naeural/ctrl", "naeural/ctrl/x", False),
        ("naeural/+/config", "naeural/0xai_abc/config", True),
        ("naeural/+/config", "naeural/a/b/config", False),
        ("naeural/#", "naeural", True),  # '#' includes the parent level
        ("naeural/#", "naeural/a/b/c", True),
        ("#", "a/b", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("+/+", "/x", True),  # empty levels are levels
        ("a/+/#", "a/b", True),
        ("a/+/#", "a", False),
        ("#", "$SYS/broker/load", False),  # wildcards never match '$' topics first level
        ("+/broker/load", "$SYS/broker/load", False),
        ("$SYS/#", "$SYS/broker/load", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a/b", "a\x00b"])
def test_invalid_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00"])
def test_invalid_topic_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_topic(bad)
