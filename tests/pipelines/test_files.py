"""Pipeline files: YAML/JSON into the wire config, ${VAR} parameters, every problem reported."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from meshops.errors import ConfigError, PluginError
from meshops.node.pipelines import PipelineEvents, PipelineManager
from meshops.pipelines import (
    PipelineFileError,
    PipelineIssue,
    installed_schemas,
    load_pipeline,
    load_valid_pipeline,
    schema_for,
    validate_pipeline,
)
from meshops.pipelines._reader import MAX_VALUES
from meshops.plugins.registry import Registry, load_captures, load_plugins

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "pipelines").glob("*.yaml"))
PLUGINS = load_plugins()
CAPTURES = load_captures()

TRAFFIC = """\
name: traffic            # or NAME
node: edge-1
type: VideoFile
capture: {url: "${VIDEO}", cap_resolution: 5}
plugins:
  - signature: ECHO_01
    instances:
      - instance_id: e1
        prefix: "${PREFIX:-cars}"
"""

TRAFFIC_WIRE = {
    "NAME": "traffic",
    "TYPE": "VideoFile",
    "URL": "/videos/a.mp4",
    "CAP_RESOLUTION": 5,
    "PLUGINS": [{"SIGNATURE": "ECHO_01", "INSTANCES": [{"INSTANCE_ID": "e1", "PREFIX": "cars"}]}],
}


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path, **variables: str) -> list[PipelineIssue]:
    """Every problem of a file, whether it stops the reading or the validation."""
    try:
        return load_pipeline(path, variables, environ={}).validate(PLUGINS, CAPTURES)
    except PipelineFileError as exc:
        return exc.issues


def texts(issues: list[PipelineIssue]) -> list[str]:
    return [str(issue) for issue in issues]


# ---- the file format -------------------------------------------------------------------------


def test_yaml_file_becomes_the_wire_config(tmp_path: Path) -> None:
    path = write(tmp_path, TRAFFIC)
    pipeline = load_pipeline(path, {"VIDEO": "/videos/a.mp4"}, environ={})
    assert pipeline.config == TRAFFIC_WIRE
    assert pipeline.nodes == ("edge-1",)
    assert pipeline.source == path
    assert (pipeline.name, pipeline.instance_count) == ("traffic", 1)
    assert pipeline.validate(PLUGINS, CAPTURES) == []


def test_json_file_gives_the_same_config(tmp_path: Path) -> None:
    document = {
        "Name": "traffic",
        "nodes": ["edge-1", "0xai_Aabc"],
        "type": "VideoFile",
        "capture": {"url": "${VIDEO}", "cap_resolution": 5},
        "plugins": [{"signature": "ECHO_01", "instances": [{"instance_id": "e1"}]}],
    }
    path = write(tmp_path, json.dumps(document), "pipeline.json")
    pipeline = load_pipeline(path, {"VIDEO": "/videos/a.mp4", "PREFIX": "x"}, environ={})
    expected = json.loads(json.dumps(TRAFFIC_WIRE))
    del expected["PLUGINS"][0]["INSTANCES"][0]["PREFIX"]
    assert pipeline.config == expected
    assert pipeline.nodes == ("edge-1", "0xai_Aabc")
    assert pipeline.lines == {}


def test_keys_are_case_insensitive_down_to_instances_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        Name: p
        TYPE: Void
        Stream_Config_Metadata: {cameraId: 7, Nested: {keepMe: 1}}
        Plugins:
          - SIGNATURE: echo_01
            Instances:
              - Instance_Id: e1
                Allow_Empty_Inputs: true
                extra_data: {someKey: [1, {innerKey: 2}]}
        """,
    )
    config = load_pipeline(path, environ={}).config
    assert config == {
        "NAME": "p",
        "TYPE": "Void",
        "STREAM_CONFIG_METADATA": {"cameraId": 7, "Nested": {"keepMe": 1}},
        "PLUGINS": [
            {
                "SIGNATURE": "echo_01",
                "INSTANCES": [
                    {
                        "INSTANCE_ID": "e1",
                        "ALLOW_EMPTY_INPUTS": True,
                        "EXTRA_DATA": {"someKey": [1, {"innerKey": 2}]},
                    }
                ],
            }
        ],
    }
    assert validate_pipeline(config, PLUGINS, CAPTURES) == []


def test_a_key_given_twice_in_any_case_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        name: a
        NAME: b
        type: Void
        url: x
        capture: {URL: y}
        node: n1
        nodes: [n2]
        plugins:
          - signature: ECHO_01
            instances:
              - {instance_id: e1, prefix: a, PREFIX: b}
        """,
    )
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path, environ={})
    assert [(i.path, i.line) for i in caught.value.issues] == [
        ("NAME", 2),
        ("URL", 5),
        ("NODES", 7),
        ("PLUGINS[0].INSTANCES[0].PREFIX", 11),
    ]
    assert "given twice: as 'url' and 'capture.URL'" in caught.value.issues[1].message


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        name: p
        type: Void
        plugins:
          - signature: ECHO_01
            instances:
              - &base {instance_id: e1, allow_empty_inputs: true, prefix: x}
              - {<<: *base, instance_id: e2}
              - *base
        """,
    )
    instances = load_pipeline(path, environ={}).config["PLUGINS"][0]["INSTANCES"]
    assert instances[1] == {"INSTANCE_ID": "e2", "ALLOW_EMPTY_INPUTS": True, "PREFIX": "x"}
    assert instances[2] == instances[0] == {**instances[1], "INSTANCE_ID": "e1"}


# ---- variables -------------------------------------------------------------------------------


def test_variables_defaults_and_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        name: ${NAME:-default-name}
        node: ${NODE}
        type: Void
        url: "a $HOME b $${LITERAL} ${EMPTY:-fallback} ${EMPTY_NO_DEFAULT}"
        plugins:
          - signature: ECHO_01
            instances:
              - instance_id: e1
                prefix: ${PREFIX}-${PREFIX}
        """,
    )
    environ = {"NODE": "env-node", "PREFIX": "env", "EMPTY": "", "EMPTY_NO_DEFAULT": ""}
    pipeline = load_pipeline(path, {"PREFIX": "cli"}, environ=environ)
    assert pipeline.config["NAME"] == "default-name"
    assert pipeline.nodes == ("env-node",)
    assert pipeline.config["URL"] == "a $HOME b ${LITERAL} fallback "
    assert pipeline.config["PLUGINS"][0]["INSTANCES"][0]["PREFIX"] == "cli-cli"
    assert load_pipeline(path, {"NAME": "given"}, environ=environ).config["NAME"] == "given"


def test_variables_give_text_that_the_schemas_convert(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\ntype: Void\ncap_resolution: ${FPS:-5}\n")
    pipeline = load_pipeline(path, environ={})
    assert pipeline.config["CAP_RESOLUTION"] == "5"
    assert pipeline.validate(PLUGINS, CAPTURES) == []
    bad = load_pipeline(path, {"FPS": "fast"}, environ={}).validate(PLUGINS, CAPTURES)
    assert texts(bad) == [
        "CAP_RESOLUTION: Input should be a valid number, unable to parse string as a number"
    ]


def test_every_unset_variable_is_named_with_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, TRAFFIC.replace("${PREFIX:-cars}", "${PREFIX}") + "extra: ${OOPS\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path, environ={"PREFIX_OTHER": "x"})
    issues = caught.value.issues
    assert [(i.path, i.line) for i in issues] == [
        ("URL", 4),
        ("PLUGINS[0].INSTANCES[0].PREFIX", 9),
        ("EXTRA", 10),
    ]
    assert issues[0].message.startswith("variable VIDEO is not set and has no default")
    assert "variable PREFIX is not set" in issues[1].message
    assert "never closed" in issues[2].message
    assert str(path) in str(caught.value) and "3 problems" in str(caught.value)
    assert isinstance(caught.value, ConfigError)


# ---- every problem, with its path ------------------------------------------------------------


def test_every_problem_is_collected_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: Foo
        cap_resolution: 0
        plugins:
          - signature: ECHO_01
            instances:
              - instance_id: e1
              - instance_id: e2
                process_delay: -1
                prefix: [not, text]
              - instance_id: e1
              - prefix: no id
          - signature: NOPE_01
            instances: [{instance_id: n1}]
          - signature: ECHO_01
            threshold: 3
            instances: []
          - just text
        """,
    )
    issues = problems(path)
    assert texts(issues) == [
        "TYPE: unknown capture type 'Foo' (installed: " + ", ".join(sorted(CAPTURES.classes)) + ")",
        "NAME: Field required",
        "CAP_RESOLUTION: Input should be greater than 0",
        "PLUGINS[0].INSTANCES[1].PROCESS_DELAY: Input should be greater than or equal to 0",
        "PLUGINS[0].INSTANCES[1].PREFIX: Input should be a valid string",
        "PLUGINS[0].INSTANCES[2].INSTANCE_ID: instance 'e1' of ECHO_01 is declared twice "
        "(also PLUGINS[0].INSTANCES[0])",
        "PLUGINS[0].INSTANCES[3].INSTANCE_ID: required: the instance's id (text, unique within "
        "the plugin)",
        "PLUGINS[1].SIGNATURE: unknown plugin 'NOPE_01' (installed: "
        + ", ".join(sorted(PLUGINS.classes))
        + ")",
        "PLUGINS[2].THRESHOLD: not a plugin key (SIGNATURE, INSTANCES); instance settings go in "
        "each item of INSTANCES",
        "PLUGINS[2].INSTANCES: must be a non-empty list of instances",
        "PLUGINS[3]: must be a mapping with SIGNATURE and INSTANCES",
    ]
    assert [issue.line for issue in issues] == [1, None, 2, 8, 9, 10, 11, 12, 15, 16, 17]


def test_missing_type_and_bad_structure(tmp_path: Path) -> None:
    assert texts(validate_pipeline({"NAME": "p", "PLUGINS": {}}, PLUGINS, CAPTURES)) == [
        "TYPE: required (installed: "
        + ", ".join(sorted(cls.TYPE for cls in CAPTURES.classes.values()))
        + ")",
        "PLUGINS: must be a list of {SIGNATURE, INSTANCES} entries",
    ]
    numeric = {
        "NAME": "p",
        "TYPE": "Void",
        "PLUGINS": [{"SIGNATURE": "ECHO_01", "INSTANCES": [{"INSTANCE_ID": 7}]}],
    }
    assert texts(validate_pipeline(numeric, PLUGINS, CAPTURES)) == [
        "PLUGINS[0].INSTANCES[0].INSTANCE_ID: must be non-empty text, not 7 (quote numbers in YAML)"
    ]
    assert texts(validate_pipeline([], PLUGINS, CAPTURES)) == [  # type: ignore[arg-type]
        "a pipeline is a mapping, not list"
    ]


def test_capture_checks_of_the_capture_type_apply(tmp_path: Path) -> None:
    config = {"NAME": "p", "TYPE": "structuredfile", "URL": "data.txt", "DELIMITER": ";;"}
    assert texts(validate_pipeline(config, PLUGINS, CAPTURES)) == [
        "DELIMITER: String should have at most 1 character"
    ]
    del config["DELIMITER"]
    assert texts(validate_pipeline(config, PLUGINS, CAPTURES)) == [
        "FORMAT: cannot tell the format of 'data.txt' from its extension; "
        "set FORMAT to 'csv' or 'jsonl'"
    ]


def test_load_valid_pipeline_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, TRAFFIC.replace("capture:", "cap_resolution: -1\ncapture_:"))
    with pytest.raises(PipelineFileError) as caught:
        load_valid_pipeline(path, {"VIDEO": "a.mp4"}, environ={}, plugins=PLUGINS)
    assert [(i.path, i.line) for i in caught.value.issues] == [
        ("URL", None),
        ("CAP_RESOLUTION", 4),
    ]


# ---- bad files -------------------------------------------------------------------------------


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\ntype: Void\nplugins:\n  - signature: X\n   instances: []\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path, environ={})
    (issue,) = caught.value.issues
    assert issue.line == 5 and issue.message.startswith("invalid YAML:")
    assert issue.located(path).startswith(f"{path}:5: invalid YAML")
    assert str(caught.value).startswith(f"{path}: 1 problem: invalid YAML")


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "name": "p",\n  "type": "Void",,\n}\n', "p.json")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path, environ={})
    (issue,) = caught.value.issues
    assert issue.line == 3 and issue.message.startswith("invalid JSON:")
    for text in ('{"name": "p", "NAME": "q", "name": "r"}', '{"x": NaN}'):
        with pytest.raises(PipelineFileError, match="invalid JSON"):
            load_pipeline(write(tmp_path, text, "p.json"), environ={})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "the file is empty"),
        ("- a\n- b\n", None, "expected a mapping (NAME, TYPE...), not list"),
        ("name: p\nname: q\n", 2, "key 'name' appears twice"),
        ("name: p\nwhen: 2024-01-01\n", 2, "reads as a date; quote it"),
        ("name: p\nx: !!binary aGk=\n", 2, "reads as a bytes"),
        ("name: p\nx: !custom 1\n", 2, "invalid YAML: could not determine a constructor"),
        ("name: p\nx: .nan\n", 2, "is not a finite number"),
        ("name: p\n? [a]\n: b\n", 2, "a key must be text"),
        ("name: p\n---\nname: q\n", 2, "invalid YAML: but found another document"),
        ("name: p\n1: x\n", 2, "key 1 must be a name (text)"),
        ("name: p\nnode: [edge-1, 7]\n", 2, "must be a node alias or address"),
    ],
)
def test_files_that_cannot_be_read(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path, environ={})
    (issue,) = caught.value.issues
    assert message in issue.message
    assert issue.line == line


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError, match="cannot read: No such file"):
        load_pipeline(tmp_path / "nope.yaml")
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: p\nprefix: caf\xe9\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path)
    assert (caught.value.issues[0].line, caught.value.issues[0].message) == (2, "not UTF-8 text")


def test_alias_bombs_and_deep_nesting_are_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(PipelineFileError, match=f"at most {MAX_VALUES}"):
        load_pipeline(path, environ={})
    with pytest.raises(PipelineFileError, match="nested more than"):
        load_pipeline(write(tmp_path, "x: " + "[" * 100 + "]" * 100 + "\n"), environ={})
    with pytest.raises(PipelineFileError, match="nested more than"):
        load_pipeline(write(tmp_path, '{"x": ' + "[" * 100 + "]" * 100 + "}", "p.json"))


# ---- examples and schemas --------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_here_and_on_a_node(path: Path) -> None:
    pipeline = load_valid_pipeline(path, environ={}, plugins=PLUGINS, captures=CAPTURES)
    assert pipeline.instance_count >= 1
    events = PipelineEvents(
        emit=lambda *a: None,
        instance_error=lambda *a: None,
        capture_error=lambda *a: None,
        command_done=lambda *a: None,
    )
    PipelineManager("n1", PLUGINS, CAPTURES, events).validate(pipeline.config)  # no error


def test_examples_cover_void_structured_file_and_video_file() -> None:
    types = {load_pipeline(path, environ={}).config["TYPE"] for path in EXAMPLES}
    assert {"Void", "StructuredFile", "VideoFile"} <= types


def test_schemas_of_installed_plugins_and_captures() -> None:
    everything = installed_schemas(PLUGINS, CAPTURES)
    assert "ECHO_01" in everything["plugins"] and "VideoFile" in everything["captures"]
    assert "PREFIX" in everything["plugins"]["ECHO_01"]["properties"]
    assert schema_for("videofile", PLUGINS, CAPTURES) == everything["captures"]["VideoFile"]
    assert schema_for("echo_01", PLUGINS, CAPTURES) == everything["plugins"]["ECHO_01"]
    with pytest.raises(PluginError, match=r"no plugin or capture type named 'X' \(plugins: "):
        schema_for("X", PLUGINS, CAPTURES)


def test_a_broken_plugin_package_is_named_with_its_reason() -> None:
    broken = Registry("plugin", dict(PLUGINS.classes), {"BAD_01": "ImportError: no module x"})
    config = {
        "NAME": "p",
        "TYPE": "Void",
        "PLUGINS": [{"SIGNATURE": "bad_01", "INSTANCES": [{"INSTANCE_ID": "b1"}]}],
    }
    assert texts(validate_pipeline(config, broken, CAPTURES)) == [
        "PLUGINS[0].SIGNATURE: plugin bad_01 failed to load: ImportError: no module x"
    ]
    with pytest.raises(PluginError, match="failed to load: ImportError"):
        schema_for("BAD_01", broken, CAPTURES)
