"""Pipelines through the SDK against a real node: deploy and confirm, stream, update,
command, attach from another session, close; refusals as DeployError naming the cause."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from meshops.errors import ConfigError, TransportError
from meshops.protocol import Envelope, EventType, NodeKey, parse_message
from meshops.sdk import (
    DeployError,
    Payload,
    PipelineNotFoundError,
    PluginSpec,
    SdkError,
    SessionClosedError,
)
from meshops.transport import EmbeddedBroker, MosquittoBroker
from tests.waiting import wait_until

from .conftest import Net, echo, network, session_on

pytestmark = pytest.mark.timeout(60)


def test_deploy_waits_for_the_node_and_payloads_stream(
    broker: EmbeddedBroker | MosquittoBroker, tmp_path: Path
) -> None:
    with network(broker.url, tmp_path) as net:
        session, node = net.session, net.node
        everything = session.stream(timeout=10)
        mine = session.stream(node="n1", pipeline="demo", instance_id="e1", timeout=10)
        nothing = session.stream(pipeline="demo", instance_id="other", timeout=0.5)
        called: list[Payload] = []
        session.on_payload(called.append, node=node.address, signature="echo_01")

        pipeline = session.deploy("n1", "demo", plugins=[echo(prefix="A")])

        assert node.pipelines.names() == ["demo"]  # confirmed means running
        assert pipeline.config["PLUGINS"][0]["INSTANCES"][0]["PREFIX"] == "A"
        received = [next(mine) for _ in range(3)]
        first = received[0]
        assert (first.node, first.node_address, first.pipeline) == ("n1", node.address, "demo")
        assert (first.signature, first.instance_id, first["PREFIX"]) == ("ECHO_01", "e1", "A")
        assert isinstance(first.timestamp, dt.datetime) and first.timestamp.tzinfo is not None
        counts = [p["COUNT"] for p in received]
        assert counts == sorted(counts) and len(set(counts)) == 3
        assert next(everything).pipeline == "demo"
        assert list(nothing) == []
        assert wait_until(lambda: len(called) >= 2, 5)
        assert all(p.node_address == node.address for p in called)
        assert not {"bad_signature", "hash_mismatch", "replayed"} & set(session.refused)
        mine.close()
        assert mine.get(0.3) is None


def test_an_invalid_config_is_refused_naming_the_field(net: Net) -> None:
    session = net.session
    started = time.monotonic()
    with pytest.raises(DeployError, match="PROCESS_DELAY") as err:
        session.deploy("n1", "bad", plugins=[echo(delay=-1)])
    error = err.value
    assert (error.node, error.pipeline, error.instances) == ("n1", "bad", ("ECHO_01/e1",))
    assert error.code is not None and error.code < 0 and not error.timed_out
    assert "'n1'" in str(error) and "'bad'" in str(error) and "ECHO_01/e1" in str(error)
    with pytest.raises(DeployError, match="NOPE_01"):
        session.deploy("n1", "bad", plugins=[PluginSpec("NOPE_01", "x")])
    with pytest.raises(DeployError, match="CAP_RESOLUTION"):
        session.deploy("n1", "bad", capture={"cap_resolution": 0}, plugins=[echo()])
    assert time.monotonic() - started < 3  # refusals, not timeouts
    assert net.node.pipelines.names() == []


def test_update_instance_changes_what_the_instance_sends(net: Net) -> None:
    pipeline = net.session.deploy("n1", "demo", plugins=[echo(prefix="A")])
    with pipeline.payloads("e1", timeout=10) as payloads:
        pipeline.update_instance("e1", prefix="B")
        assert any(p["PREFIX"] == "B" for p in payloads)
    assert pipeline.instances[0].config["PREFIX"] == "B"
    stored = net.node.pipelines.config("demo")
    assert stored is not None and stored["PLUGINS"][0]["INSTANCES"][0]["PREFIX"] == "B"
    with pytest.raises(ValueError, match="no instance 'nope'"):
        pipeline.update_instance("nope", prefix="C")
    with pytest.raises(DeployError, match="PREFIX"):
        pipeline.update_instance("e1", prefix="x" * 101)
    assert pipeline.instances[0].config["PREFIX"] == "B"  # the refused change was discarded


def test_an_instance_command_gets_the_echo_reply(net: Net) -> None:
    pipeline = net.session.deploy("n1", "demo", plugins=[echo(delay=0.5)])
    reply = pipeline.command("e1", "PING", value=3)
    assert reply is not None and reply.instance_id == "e1"
    params = reply["COMMAND_PARAMS"]
    assert params["PING"] is True and params["VALUE"] == 3 and len(params["SDK_REQUEST"]) == 8
    whole = pipeline.command("e1", {"COMMAND_PARAMS": {"X": 1}, "EXTRA": True}, flag="on")
    assert whole is not None and whole["COMMAND_PARAMS"]["X"] == 1
    assert whole["COMMAND_PARAMS"]["FLAG"] == "on"


def test_a_second_session_attaches_and_redeploys_only_changes(net: Net) -> None:
    pipeline = net.session.deploy("n1", "demo", plugins=[echo(prefix="A")])
    with net.other_session(name="second") as other:
        [info] = other.pipelines("n1")
        assert (info.name, info.capture_type, info.initiator) == ("demo", "Void", other.address)
        [instance] = info.instances
        assert (instance.signature, instance.instance_id) == ("ECHO_01", "e1")
        assert instance.config["PREFIX"] == "A" and instance.status is not None

        attached = other.attach("n1", "demo")
        assert attached.config == pipeline.config
        with attached.payloads(timeout=5) as payloads:
            assert next(payloads).pipeline == "demo"
        with pytest.raises(PipelineNotFoundError, match=r"no pipeline 'nope' \(it runs: demo\)"):
            other.attach("n1", "nope")

        started = time.monotonic()
        again = other.deploy("n1", "demo", plugins=[echo(prefix="A")])  # unchanged: nothing waits
        changed = other.deploy("n1", "demo", plugins=[echo(prefix="C")])
        assert time.monotonic() - started < 3
        assert again.config["PLUGINS"] == pipeline.config["PLUGINS"]
        assert changed.instances[0].config["PREFIX"] == "C"


def test_close_removes_the_pipeline(net: Net) -> None:
    pipeline = net.session.deploy("n1", "demo", plugins=[echo()])
    with net.other_session() as other:
        stale = other.attach("n1", "demo")
        pipeline.close()
        assert pipeline.closed
        assert net.node.pipelines.names() == [] and "demo" not in net.node.store.pipelines()
        pipeline.close()  # a second close sends nothing
        with pytest.raises(SdkError, match="closed"):
            pipeline.add_instance("ECHO_01", "e2").deploy()
        with pytest.raises(DeployError, match="no pipeline 'demo'") as err:
            stale.close(timeout=5)
        assert err.value.code == -4


def test_a_silent_node_times_out_naming_what_is_missing(net: Net) -> None:
    ghost = NodeKey.generate()  # a node that says hello and then never answers
    hello = Envelope(ghost, alias="ghost").encode(EventType.HEARTBEAT, {"SECURED": False})
    net.session._link.directory.on_heartbeat(parse_message(hello))  # noqa: SLF001
    started = time.monotonic()
    with pytest.raises(DeployError, match=r"'ghost' did not confirm in time") as err:
        net.session.deploy("ghost", "p", plugins=[echo()], timeout=0.5)
    assert err.value.timed_out and err.value.instances == ("ECHO_01/e1",)
    assert "PIPELINE_OK (1)" in err.value.reason and "PLUGIN_CONFIG_OK (100)" in err.value.reason
    assert time.monotonic() - started < 2


def test_closing_the_session_ends_streams_and_later_calls(net: Net) -> None:
    with net.other_session() as other:
        stream = other.stream()
    assert list(stream) == []
    with pytest.raises(SessionClosedError):
        other.deploy("n1", "p", plugins=[echo()])
    with pytest.raises(SessionClosedError):
        other.stream()
    other.close()  # closing twice is fine


def test_a_session_needs_a_broker() -> None:
    with pytest.raises(TransportError, match="could not connect"):
        with session_on("mqtt://127.0.0.1:1", connect_timeout=0.5):
            pass
    with pytest.raises(ConfigError, match="alias must be 1 to 20"):
        with session_on("mqtt://127.0.0.1:1", name="x" * 21):
            pass
