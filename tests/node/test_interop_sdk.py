"""The unmodified reference SDK (``ratio1``) drives a MeshOps supervisor node.

Run on both Mosquitto and the embedded broker: discovery, deploy (confirmed by the SDK),
payloads to ``on_data``, periodic custom code and ``wait_exec``, instance commands, close;
and a secured node that obeys its allow-list only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops.transport import EmbeddedBroker, MosquittoBroker

from .sdk import Received, running_node, sdk_session, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def custom_add(plugin):  # noqa: ANN001, ANN201 - the SDK sends this function's body
    total = plugin.obj_cache.get("total", 0) + 1
    plugin.obj_cache["total"] = total
    return {"TOTAL": total, "CFG": plugin.cfg_instance_id, "NODE": plugin.node_addr}


def custom_once(plugin):  # noqa: ANN001, ANN201
    return sum(range(10))


def test_reference_sdk_drives_a_meshops_node(
    broker: EmbeddedBroker | MosquittoBroker, tmp_path: Path
) -> None:
    with (
        running_node(tmp_path / "node", broker.port, secured=False) as node,
        sdk_session(tmp_path / "sdk", broker.port, "interop") as session,
    ):
        assert wait_for(lambda: node.address in session.get_active_nodes(), 15)

        pipeline = session.create_pipeline(node=node.address, name="p1", data_source="Void")
        echoes = Received()
        echo = pipeline.create_plugin_instance(
            signature="ECHO_01",
            instance_id="echo1",
            process_delay=0.2,
            allow_empty_inputs=True,
            prefix="hello",
            on_data=lambda pipe, data: echoes(data),
        )
        pipeline.deploy(timeout=15)
        assert pipeline.was_last_operation_successful is True
        assert "p1" in node.pipelines.names()
        assert wait_for(lambda: len(echoes) >= 3, 10)
        assert echoes.items[-1]["PREFIX"] == "hello"
        assert echoes.items[-1]["COUNT"] >= 3

        results = Received()
        pipeline.create_custom_plugin_instance(
            instance_id="code1",
            custom_code=custom_add,
            process_delay=0.3,
            on_data=lambda pipe, result, payload: results(result),
        )
        pipeline.deploy(timeout=15)
        assert wait_for(lambda: len(results) >= 2, 20), "no custom-code results"
        first, second = results.items[0], results.items[1]
        assert first["CFG"] == "code1"
        assert first["NODE"] == node.address
        assert second["TOTAL"] == first["TOTAL"] + 1  # obj_cache kept between runs

        result, error = pipeline.wait_exec(custom_code=custom_once, timeout=20)
        assert (result, error) == (45, None)

        echo.send_instance_command("PING", timeout=15)
        assert echo.was_last_operation_successful is True
        reply = echo.send_instance_command_and_wait_for_response_payload(
            "PING2", command_params={"X": 7}, timeout_command=15, timeout_response_payload=5
        )
        assert reply is not None
        assert reply["COMMAND_PARAMS"]["X"] == 7

        # a second session sees the running pipeline through NET_CONFIG and attaches to it
        with sdk_session(tmp_path / "sdk2", broker.port, "observer") as observer:
            assert wait_for(lambda: node.address in observer.get_active_nodes(), 15)
            assert observer.wait_for_node_configs(node.address, timeout=15) is True
            assert "p1" in observer.get_active_pipelines(node.address)
            seen = Received()
            observer.attach_to_pipeline(
                node=node.address, name="p1", on_data=lambda pipe, sig, inst, data: seen(inst)
            )
            assert wait_for(lambda: "echo1" in seen.items, 10)

        pipeline.close(timeout=15)
        assert pipeline.was_last_operation_successful is True
        assert node.pipelines.names() == []
        assert node.store.pipelines() == {}


def test_secured_node_obeys_only_its_allow_list(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    with running_node(tmp_path / "node", mosquitto.port, secured=True) as node:
        with sdk_session(tmp_path / "friend", mosquitto.port, "friend") as friend:
            node.store.allow(friend.get_client_address(), "friend")
            assert wait_for(lambda: node.address in friend.get_active_nodes(), 15)
            ok = friend.create_pipeline(node=node.address, name="allowed", data_source="Void")
            ok.create_plugin_instance(signature="ECHO_01", instance_id="e1", process_delay=1)
            ok.deploy(timeout=15)
            assert ok.was_last_operation_successful is True

        with sdk_session(tmp_path / "stranger", mosquitto.port, "stranger") as stranger:
            assert wait_for(lambda: node.address in stranger.get_active_nodes(), 15)
            bad = stranger.create_pipeline(node=node.address, name="intruder", data_source="Void")
            bad.create_plugin_instance(signature="ECHO_01", instance_id="e1", process_delay=1)
            bad.deploy(timeout=15)
            assert bad.was_last_operation_successful is False
        assert node.pipelines.names() == ["allowed"]
        assert node.refusals["unauthorized"] >= 1
