"""``meshops validate`` and ``meshops schema``, run as a user runs them: subprocesses.

Also keeps docs/cli.md (generated from the commands) in step with the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshops._clidoc import render

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).parents[1]
MESHOPS = [sys.executable, "-m", "meshops.cli"]
EXAMPLE = ROOT / "examples" / "pipelines" / "echo.yaml"
VARIABLES = {"NODE", "PREFIX", "READINGS", "VIDEO", "MESHOPS_TEST_THRESHOLD"}

BAD = """\
name: bad
type: Void
plugins:
  - signature: ECHO_01
    instances:
      - instance_id: e1
        process_delay: ${MESHOPS_TEST_THRESHOLD:--1}
      - instance_id: e1
  - signature: NOPE_01
    instances: [{instance_id: x}]
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    return subprocess.run(
        [*MESHOPS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, "COLUMNS": "60", **(env or {})},
    )


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_a_good_file() -> None:
    result = run("validate", "examples/pipelines/echo.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "examples/pipelines/echo.yaml: OK (pipeline echo, 1 instance)\n"


def test_validate_prints_every_problem_with_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:7: PLUGINS[0].INSTANCES[0].PROCESS_DELAY: "
        "Input should be greater than or equal to 0",
        f"{path}:8: PLUGINS[0].INSTANCES[1].INSTANCE_ID: instance 'e1' of ECHO_01 is declared "
        "twice (also PLUGINS[0].INSTANCES[0])",
        f"{path}:9: PLUGINS[1].SIGNATURE: unknown plugin 'NOPE_01' (installed: "
        "CUSTOM_EXEC_01, ECHO_01, FACE_DETECT_01, IMAGE_CLASSIFY_01, REST_CUSTOM_EXEC_01, "
        "TEXT_EMBED_01, ZSCORE_ALERT_01)",
        f"error: {path}: 3 problems",
    ]


def test_set_wins_over_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BAD.replace("NOPE_01", "ECHO_01").replace("id: e1\n  -", "id: e2\n  -"))
    env = {"MESHOPS_TEST_THRESHOLD": "-5"}
    assert "PROCESS_DELAY" in run("validate", str(path), env=env).stderr
    fixed = run("validate", str(path), "--set", "MESHOPS_TEST_THRESHOLD=0.5", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == f"{path}: OK (pipeline bad, 3 instances)"


def test_unset_variable_and_bad_yaml_name_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\ntype: VideoFile\nurl: ${VIDEO}\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(
        f"{path}:3: URL: variable VIDEO is not set and has no default"
    )
    assert run("validate", str(path), "--set", "VIDEO=a.mp4").returncode == 0
    broken = write(tmp_path, "name: p\n  type: Void\n", "broken.yaml")
    result = run("validate", str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{broken}:2: invalid YAML: mapping values are not allowed")


def test_validate_json_output(tmp_path: Path) -> None:
    good = run("validate", str(EXAMPLE), "--json", "--set", "NODE=edge-9")
    assert good.returncode == 0
    result = json.loads(good.stdout)
    assert result["valid"] is True and result["errors"] == []
    assert (result["pipeline"], result["nodes"], result["instances"]) == ("echo", ["edge-9"], 1)
    assert result["config"]["PLUGINS"][0]["INSTANCES"][0]["PREFIX"] == "hello"

    bad = run("validate", str(write(tmp_path, BAD)), "--json")
    assert bad.returncode == 1 and bad.stderr == ""
    result = json.loads(bad.stdout)
    assert result["valid"] is False and result["pipeline"] == "bad"
    assert [(e["path"], e["line"]) for e in result["errors"]] == [
        ("PLUGINS[0].INSTANCES[0].PROCESS_DELAY", 7),
        ("PLUGINS[0].INSTANCES[1].INSTANCE_ID", 8),
        ("PLUGINS[1].SIGNATURE", 9),
    ]

    missing = json.loads(run("validate", str(tmp_path / "none.yaml"), "--json").stdout)
    assert missing["valid"] is False and missing["config"] is None
    assert missing["errors"][0]["message"].startswith("cannot read")


@pytest.mark.parametrize("args", [("--set", "NO_EQUALS"), ("--set", "1X=2")])
def test_bad_arguments_give_one_line_errors(args: tuple[str, ...]) -> None:
    result = run("validate", str(EXAMPLE), *args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: --set: expected NAME=VALUE")
    assert len(result.stderr.splitlines()) == 1


def test_schema_lists_everything_installed() -> None:
    result = run("schema")
    assert result.returncode == 0, result.stderr
    schemas = json.loads(result.stdout)
    assert {"ECHO_01", "CUSTOM_EXEC_01"} <= set(schemas["plugins"])
    assert {"Void", "VideoFile", "StructuredFile"} <= set(schemas["captures"])
    assert "CAP_RESOLUTION" in schemas["captures"]["Void"]["properties"]


def test_schema_of_one_plugin_or_capture_type() -> None:
    echo = json.loads(run("schema", "echo_01").stdout)
    assert echo["properties"]["PREFIX"]["type"] == "string"
    video = json.loads(run("schema", "VideoFile").stdout)
    assert "LOOP" in video["properties"] and "URL" in video["required"]
    unknown = run("schema", "NOPE")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("error: no plugin or capture type named 'NOPE' (plugins: ")
    assert "ECHO_01" in unknown.stderr and "VideoFile" in unknown.stderr
    assert len(unknown.stderr.splitlines()) == 1


def test_cli_reference_is_current() -> None:
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == render(), (
        "docs/cli.md is stale: python -m meshops._clidoc --write docs/cli.md"
    )
