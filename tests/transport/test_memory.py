"""The in-memory bus: the transport surface for unit tests, with wildcard routing."""

from __future__ import annotations

import pytest

from meshops.errors import TransportError
from meshops.transport import MemoryBus, Transport

from .helpers import Collector, wait_until


def test_memory_bus_routes_by_wildcard_filters() -> None:
    bus = MemoryBus()
    a_msgs, b_msgs = Collector(), Collector()
    with bus.client("a", a_msgs) as a, bus.client("b", b_msgs) as b:
        assert isinstance(a, Transport)
        a.subscribe("naeural/+/payloads")
        b.subscribe("naeural/#")
        b.publish("naeural/node1/payloads", b"1")
        a.publish("naeural/ctrl", b"2")
        assert a_msgs.wait_for(1, 2) and b_msgs.wait_for(2, 2)
    assert a_msgs.messages == [("naeural/node1/payloads", b"1")]
    assert sorted(b_msgs.payloads) == [b"1", b"2"]


def test_memory_bus_drop_rule_and_handlers() -> None:
    bus = MemoryBus(drop=lambda topic, payload: payload == b"lose")
    routed = Collector()
    with bus.client("a") as a:
        a.subscribe("x/#", handler=routed)
        for p in (b"keep", b"lose", b"keep2"):
            a.publish("x/y", p)
        assert routed.wait_for(2, 2)
    assert routed.payloads == [b"keep", b"keep2"]
    assert bus.dropped == 1


def test_memory_transport_refuses_publish_when_stopped() -> None:
    bus = MemoryBus()
    t = bus.client("a")
    with pytest.raises(TransportError):
        t.publish("x", b"y")
    with t:
        assert wait_until(lambda: t.connected, 1)
    with pytest.raises(TransportError):
        t.publish("x", b"y")


def test_duplicate_client_ids_are_refused() -> None:
    bus = MemoryBus()
    with bus.client("same"):
        t = bus.client("same")
        with pytest.raises(TransportError, match="already connected"):
            t.start()
