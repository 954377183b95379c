"""A third-party plugin package, installed with pip, is found through its entry point and runs.

This is the path a plugin author takes (docs: "write your own plugin"): a package declaring
``[project.entry-points."meshops.plugins"]``; no folder scanning, no registration call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "meshops-hello"
version = "0.1.0"
dependencies = ["meshops"]

[project.entry-points."meshops.plugins"]
HELLO_01 = "meshops_hello:HelloPlugin"
"""

MODULE = """\
from pydantic import Field
from meshops.plugins.base import BusinessPlugin, PluginConfig


class HelloConfig(PluginConfig):
    greeting: str = Field(default="hello", min_length=1)


class HelloPlugin(BusinessPlugin):
    SIGNATURE = "HELLO_01"
    CONFIG = HelloConfig

    def process(self, inputs):
        return {"GREETING": f"{self.config.greeting}, {self.context.node_alias}"}
"""

RUN = """\
import json, threading
from meshops.node.pipelines import PipelineEvents, PipelineManager
from meshops.plugins.registry import load_captures, load_plugins

got, done = [], threading.Event()
def emit(pipeline, signature, instance, body):
    got.append({"SIG": signature, **body}); done.set()
plugins = load_plugins()
mgr = PipelineManager("n1", plugins, load_captures(), PipelineEvents(
    emit=emit, instance_error=print, capture_error=print, command_done=print))
mgr.apply({"NAME": "p", "TYPE": "Void", "PLUGINS": [{"SIGNATURE": "HELLO_01", "INSTANCES": [
    {"INSTANCE_ID": "h1", "GREETING": "salut", "ALLOW_EMPTY_INPUTS": True,
     "PROCESS_DELAY": 0.05}]}]}, store=lambda c: None)
done.wait(10)
mgr.stop_all()
schema = plugins.get("HELLO_01").config_schema()
print(json.dumps({"payload": got[0] if got else None, "schema": sorted(schema["properties"])}))
"""


def test_pip_installed_plugin_package_is_found_and_runs(tmp_path: Path) -> None:
    package = tmp_path / "meshops-hello"
    (package / "meshops_hello").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "meshops_hello" / "__init__.py").write_text(MODULE)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        timeout=120,
    )
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUN)],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["payload"] == {"SIG": "HELLO_01", "GREETING": "salut, n1"}
    assert "GREETING" in result["schema"]
