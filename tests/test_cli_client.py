"""The client commands (nodes, deploy, pipelines, stream, close, exec) run as a user runs
them: ``python -m meshops.cli`` subprocesses against a real broker and a real secured node
that allows the CLI's key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshops.node import Node
from meshops.protocol import NodeKey
from meshops.transport import MosquittoBroker, find_mosquitto
from tests.node.helpers import running_node
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).parents[1]
MESHOPS = [sys.executable, "-m", "meshops.cli"]
ECHO = ROOT / "examples" / "pipelines" / "echo.yaml"
ALIAS = "cli-n1"


@dataclass
class Net:
    broker_url: str
    node: Node
    key_path: Path
    tmp: Path

    def run(self, *args: str, broker: str | None = None) -> subprocess.CompletedProcess[str]:
        """``meshops ARGS --broker ... --key ...``, with a clean environment."""
        env = {k: v for k, v in os.environ.items() if k not in {"MESHOPS_BROKER", "NODE"}}
        return subprocess.run(
            [*MESHOPS, *args, "--broker", broker or self.broker_url, "--key", str(self.key_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**env, "COLUMNS": "200", "HOME": str(self.tmp)},
        )

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """One broker and one node for the whole module: each CLI call costs a process start."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: run the suite through scripts/test")
    tmp = tmp_path_factory.mktemp("cli-client")
    broker = MosquittoBroker(workdir=tmp / "mosquitto").start(timeout=10)
    key = NodeKey.generate()
    key.save(tmp / "client.pem")
    try:
        with running_node(
            broker.url, tmp / "node", alias=ALIAS, supervisor=True, netmon_interval_s=1.0
        ) as node:
            node.store.allow(key.address, "cli-test")
            yield Net(broker.url, node, tmp / "client.pem", tmp)
    finally:
        broker.stop(timeout=5)


def unreachable_broker() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"mqtt://127.0.0.1:{s.getsockname()[1]}"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_nodes_lists_the_node(net: Net) -> None:
    result = net.run("nodes", "--wait", "2", "--json")
    assert result.returncode == 0, result.stderr
    [node] = [n for n in json.loads(result.stdout) if n["alias"] == ALIAS]
    assert node["address"] == net.node.address
    assert node["online"] and node["allowed"] and node["supervisor"]

    table = net.run("nodes", "--wait", "1.5")
    assert table.returncode == 0, table.stderr
    assert ALIAS in table.stdout and net.node.address in table.stdout


def test_deploy_list_stream_and_close_a_pipeline(net: Net) -> None:
    deployed = net.run("deploy", str(ECHO), "--set", f"NODE={ALIAS}", "--set", "PREFIX=cli")
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed pipeline echo to node cli-n1" in deployed.stdout
    assert "ECHO_01/echo-1" in deployed.stdout
    assert "echo" in net.node.pipelines.names()

    listed = net.run("pipelines", "--node", ALIAS, "--json")
    assert listed.returncode == 0, listed.stderr
    [echo] = [p for p in json.loads(listed.stdout) if p["name"] == "echo"]
    assert echo["node"] == ALIAS and echo["type"] == "Void"
    assert echo["instances"][0]["signature"] == "ECHO_01"
    everywhere = net.run("pipelines", "--wait", "1.5")  # every allowed node, as a table
    assert everywhere.returncode == 0 and "echo" in everywhere.stdout, everywhere.stderr

    streamed = net.run("stream", "--pipeline", "echo", "--count", "2", "--timeout", "20", "--json")
    assert streamed.returncode == 0, streamed.stderr
    payloads = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(payloads) == 2
    assert {(p["node"], p["pipeline"], p["instance_id"]) for p in payloads} == {
        (ALIAS, "echo", "echo-1")
    }
    assert all(p["node_address"] == net.node.address for p in payloads)

    closed = net.run("close", "echo", "--node", ALIAS)
    assert closed.returncode == 0, closed.stderr
    assert "closed pipeline echo on node cli-n1" in closed.stdout
    assert "echo" not in net.node.pipelines.names()

    missing = one_line_error(net.run("close", "echo", "--node", ALIAS))
    assert "runs no pipeline 'echo'" in missing


def test_exec_prints_the_result_or_the_remote_error(net: Net) -> None:
    good = net.write("good.py", "values = [6, 7]\nreturn {'product': values[0] * values[1]}\n")
    result = net.run("exec", str(good), "--node", ALIAS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"product": 42}

    bad = net.write("bad.py", "return 1 / 0\n")
    error = one_line_error(net.run("exec", str(bad), "--node", ALIAS))
    assert "ZeroDivisionError" in error and "cli-n1" in error
    assert wait_until(lambda: net.node.pipelines.names() == [], 5)  # exec pipeline archived


def test_an_invalid_file_is_never_sent(net: Net) -> None:
    bad = net.write(
        "bad.yaml",
        """\
        name: broken
        node: cli-n1
        type: Void
        plugins:
          - signature: NOPE_01
            instances: [{instance_id: x}]
        """,
    )
    # the broker is unreachable: a run that got as far as connecting would say so
    result = net.run("deploy", str(bad), broker=unreachable_broker())
    assert result.returncode == 1
    assert "PLUGINS[0].SIGNATURE" in result.stderr and "nothing sent" in result.stderr
    assert "could not connect" not in result.stderr
    assert "broken" not in net.node.pipelines.names()

    nowhere = net.write("nowhere.yaml", "name: x\ntype: Void\nplugins: []\n")
    error = one_line_error(net.run("deploy", str(nowhere), broker=unreachable_broker()))
    assert "names no node" in error


def test_an_unreachable_broker_is_a_one_line_error(net: Net) -> None:
    error = one_line_error(net.run("nodes", "--wait", "0", broker=unreachable_broker()))
    assert "could not connect" in error
