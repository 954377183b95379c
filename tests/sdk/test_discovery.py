"""Discovery: nodes from their heartbeats and the network map; clear errors when a node is
missing or does not take our commands."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from meshops.protocol import Envelope, EventType, NodeKey, parse_message
from meshops.sdk import AmbiguousNodeError, DeployError, NodeNotAllowedError, NodeNotFoundError
from meshops.sdk.discovery import NodeDirectory
from meshops.transport import MosquittoBroker
from tests.waiting import wait_until

from .conftest import Net, echo, session_on, supervisor

pytestmark = pytest.mark.timeout(60)


def test_a_node_is_known_by_its_heartbeat(net: Net) -> None:
    session, node = net.session, net.node
    assert wait_until(lambda: (n := session.node("n1")) is not None and n.heard_directly, 5)
    info = session.node("n1")
    assert info is not None
    assert (info.address, info.eth_address, info.alias) == (
        node.address,
        node.key.eth_address,
        "n1",
    )
    assert info.online and info.secured and info.allowed and info.supervisor
    assert info.pipelines == 0
    assert info.version
    assert time.time() - info.last_seen < 5
    resources = info.resources
    assert resources.cpu_cores == os.cpu_count()
    assert resources.memory_total_gb and resources.memory_total_gb > 0
    assert resources.disk_total_gb and resources.disk_available_gb is not None
    assert isinstance(resources.gpus, tuple)
    for name in (node.address, node.key.eth_address, "aixp_" + node.address.removeprefix("0xai_")):
        assert session.node(name) == info
    assert [n.address for n in session.nodes()] == [node.address]
    assert session.wait_for_node(node.key.eth_address, timeout=1).address == node.address


def test_the_pipeline_count_follows_the_node(net: Net) -> None:
    net.session.deploy("n1", "counted", plugins=[echo()])
    assert wait_until(lambda: net.session.node("n1").pipelines == 1, 5)


def test_an_unknown_node_is_named_in_the_error(net: Net) -> None:
    started = time.monotonic()
    with pytest.raises(NodeNotFoundError, match=r"'ghost' not seen within 0.3 s.*seen: n1") as err:
        net.session.wait_for_node("ghost", timeout=0.3)
    assert err.value.node == "ghost"
    assert time.monotonic() - started < 2
    with pytest.raises(NodeNotFoundError, match="ghost"):
        net.session.deploy("ghost", "p", plugins=[echo()], timeout=0.3)


def test_a_secured_node_that_does_not_allow_us_fails_fast(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    with supervisor(mosquitto.url, tmp_path / "n1") as node, session_on(mosquitto.url) as session:
        with pytest.raises(NodeNotAllowedError) as err:
            session.wait_for_node("n1", timeout=1.5)
        message = str(err.value)
        assert "'n1'" in message and session.address in message and "meshops node allow" in message
        assert err.value.address == session.address
        started = time.monotonic()
        with pytest.raises(NodeNotAllowedError, match="does not allow"):
            session.deploy("n1", "p", plugins=[echo()])
        with pytest.raises(NodeNotAllowedError):
            session.pipelines("n1")
        assert time.monotonic() - started < 1
        assert node.pipelines.names() == []


def test_a_node_that_stops_allowing_us_refuses_fast(net: Net) -> None:
    """Our view of its allow-list may be a heartbeat old: then the node's refusal fails the
    deploy at once (its -1/-100 notifications), not a timeout."""
    net.node.store.disallow(net.session.address)
    started = time.monotonic()
    with pytest.raises((NodeNotAllowedError, DeployError), match="not allow"):
        net.session.deploy("n1", "p", plugins=[echo()])
    assert time.monotonic() - started < 3  # at most a 1 s probe for configs, then the refusal
    assert net.node.pipelines.names() == []


def _netmon(supervisor_key: NodeKey, entries: dict) -> bytes:
    envelope = Envelope(supervisor_key, alias="sup")
    return envelope.encode(
        EventType.PAYLOAD,
        {"CURRENT_NETWORK": entries, "IS_SUPERVISOR": True},
        path=["sup", "admin_pipeline", "NET_MON_01", "NET_MON_01_INST"],
    )


def test_the_network_map_adds_nodes_not_heard_yet() -> None:
    me, sup, other = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    directory = NodeDirectory(me.address)
    entry = {
        "address": other.address,
        "eth_address": "0xnot-trusted",
        "eeid": "far",
        "working": "ONLINE",
        "whitelist": [me.address.removeprefix("0xai_")],
        "secured": True,
        "is_supervisor": False,
        "last_seen_sec": 2.0,
        "version": "9.9",
    }
    directory.on_netmon(parse_message(_netmon(sup, {"far": entry, "junk": {"address": "x"}})))
    far = directory.find("far")
    assert far is not None and far.address == other.address
    assert far.eth_address == other.eth_address  # computed, not the claim
    assert far.online and far.allowed and not far.heard_directly and not far.supervisor
    assert far.resources.cpu_cores is None
    assert [n.alias for n in directory.nodes()] == ["far"]

    heartbeat = Envelope(other, alias="far-self").encode(
        EventType.HEARTBEAT, {"SECURED": True, "EE_WHITELIST": [], "CPU_NR_CORES": 8}
    )
    directory.on_heartbeat(parse_message(heartbeat))
    heard = directory.find(other.address)
    assert heard is not None and heard.alias == "far-self" and heard.heard_directly
    assert not heard.allowed and heard.resources.cpu_cores == 8
    directory.on_netmon(parse_message(_netmon(sup, {"far": entry})))
    assert directory.find(other.address).alias == "far-self"  # the node's own word wins


def test_two_online_nodes_with_one_alias_are_never_guessed_between() -> None:
    me, first, second = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    clock = [1000.0]
    directory = NodeDirectory(me.address, clock=lambda: clock[0])

    def beat(key: NodeKey) -> None:
        body = {"SECURED": False, "EE_WHITELIST": []}
        directory.on_heartbeat(
            parse_message(Envelope(key, alias="cam").encode(EventType.HEARTBEAT, body))
        )

    beat(first)
    assert directory.find("cam").address == first.address
    clock[0] += 120  # the first goes quiet (offline) ...
    beat(second)  # ... and another node takes its name: the online one is meant
    assert directory.find("cam").address == second.address
    beat(first)  # both online with one alias: refuse to pick
    with pytest.raises(AmbiguousNodeError, match="2 online nodes call themselves 'cam'") as err:
        directory.find("cam")
    assert set(err.value.addresses) == {first.address, second.address}
    assert directory.find(first.address).address == first.address  # addresses still work
