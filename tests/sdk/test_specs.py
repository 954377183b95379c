"""Configs as the SDK builds them, and the command each deploy needs (pure functions)."""

from __future__ import annotations

import pytest

from meshops.protocol import Command, NotificationCode
from meshops.sdk import PipelineInfo, PluginSpec
from meshops.sdk.specs import instance_command, plan_deploy, plugin_specs, wire_keys

CAPTURE = {"NAME": "p", "TYPE": "Void"}


def test_plugins_come_as_specs_flat_dicts_or_wire_entries() -> None:
    found = plugin_specs(
        [
            PluginSpec("echo_01", "a", {"prefix": "x"}),
            {"signature": "ECHO_01", "instance_id": "b", "process_delay": 1},
            {"SIGNATURE": "OTHER_01", "INSTANCES": [{"INSTANCE_ID": "c", "K": 1}]},
        ]
    )
    assert found == {
        ("ECHO_01", "a"): {"INSTANCE_ID": "a", "PREFIX": "x"},
        ("ECHO_01", "b"): {"INSTANCE_ID": "b", "PROCESS_DELAY": 1},
        ("OTHER_01", "c"): {"INSTANCE_ID": "c", "K": 1},
    }
    with pytest.raises(ValueError, match="ECHO_01/a is given twice"):
        plugin_specs([PluginSpec("ECHO_01", "a"), {"signature": "echo_01", "instance_id": "a"}])
    with pytest.raises(ValueError, match="instance_id must be a non-empty string"):
        plugin_specs([{"signature": "ECHO_01"}])
    with pytest.raises(ValueError, match="given twice"):
        wire_keys({"prefix": 1, "PREFIX": 2})


def test_the_first_deploy_sends_everything_and_awaits_every_instance() -> None:
    instances = plugin_specs([PluginSpec("ECHO_01", "a"), PluginSpec("ECHO_01", "b")])
    action, payload, expected = plan_deploy(CAPTURE, instances, None, {})
    assert action == Command.UPDATE_CONFIG
    assert payload == {**CAPTURE, "PLUGINS": [{"SIGNATURE": "ECHO_01", "INSTANCES": [
        {"INSTANCE_ID": "a"}, {"INSTANCE_ID": "b"}]}]}  # fmt: skip
    assert [(e.ok, e.instance) for e in expected] == [
        (NotificationCode.PIPELINE_OK, None),
        (NotificationCode.PLUGIN_CONFIG_OK, "ECHO_01/a"),
        (NotificationCode.PLUGIN_CONFIG_OK, "ECHO_01/b"),
    ]


def test_later_deploys_send_only_what_changed() -> None:
    done = plugin_specs([PluginSpec("ECHO_01", "a", {"X": 1, "Y": 2}), PluginSpec("ECHO_01", "b")])
    assert plan_deploy(CAPTURE, done, CAPTURE, done) is None

    changed = {**done, ("ECHO_01", "a"): {"INSTANCE_ID": "a", "X": 5, "Y": 2}}
    action, payload, expected = plan_deploy(CAPTURE, changed, CAPTURE, done)
    assert action == Command.BATCH_UPDATE_PIPELINE_INSTANCE
    assert payload == [
        {
            "NAME": "p",
            "SIGNATURE": "ECHO_01",
            "INSTANCE_ID": "a",
            "INSTANCE_CONFIG": {"INSTANCE_ID": "a", "X": 5},
        }
    ]
    assert [e.instance for e in expected] == [None, "ECHO_01/a"]

    moved = {**CAPTURE, "CAP_RESOLUTION": 5}
    action, payload, expected = plan_deploy(moved, done, CAPTURE, done)
    assert action == Command.UPDATE_CONFIG and payload["CAP_RESOLUTION"] == 5
    assert [e.instance for e in expected] == [None]  # unchanged instances confirm nothing

    added = {**done, ("ECHO_01", "c"): {"INSTANCE_ID": "c"}}
    action, _, expected = plan_deploy(CAPTURE, added, CAPTURE, done)
    assert action == Command.UPDATE_CONFIG
    assert [e.instance for e in expected] == [None, "ECHO_01/c"]


def test_instance_commands_as_the_reference_builds_them() -> None:
    assert instance_command("RESET", {"hard": True}, "u1") == {
        "COMMAND_PARAMS": {"RESET": True, "HARD": True},
        "SDK_REQUEST": "u1",
    }
    assert instance_command({"OTHER": 1, "COMMAND_PARAMS": {"A": 1}}, {"b": 2}, "u2") == {
        "OTHER": 1,
        "COMMAND_PARAMS": {"A": 1, "B": 2},
        "SDK_REQUEST": "u2",
    }


def test_pipeline_info_reads_a_set_config_entry() -> None:
    config = {
        **CAPTURE,
        "INITIATOR_ADDR": "0xai_someone",
        "LAST_UPDATE_TIME": "2026-01-01 12:00:00.000000",
        "PLUGINS": [{"SIGNATURE": "ECHO_01", "INSTANCES": [{"INSTANCE_ID": "a"}, "junk"]}, 7],
    }
    statuses = [{"STREAM_ID": "p", "SIGNATURE": "ECHO_01", "INSTANCE_ID": "a", "RUNS": 3}]
    info = PipelineInfo.from_config("n1", "0xai_node", config, statuses)
    assert (info.name, info.capture_type, info.initiator) == ("p", "Void", "0xai_someone")
    assert info.capture == CAPTURE
    [instance] = info.instances
    assert instance.instance_id == "a" and instance.status == statuses[0]
