"""The ``meshops`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from meshops import __version__
from meshops.protocol import parse_message
from meshops.transport import MqttTransport

pytestmark = pytest.mark.timeout(120)

MESHOPS = [sys.executable, "-m", "meshops.cli"]


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--home", str(home)] if home else []
    return subprocess.run([*MESHOPS, *args, *extra], capture_output=True, text=True, timeout=60)


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"meshops {__version__}"
    helped = run("--help")
    assert helped.returncode == 0
    assert "node" in helped.stdout and "up" in helped.stdout


def test_node_address_allow_disallow(tmp_path: Path) -> None:
    first = run("node", "address", home=tmp_path)
    assert first.returncode == 0
    address, eth = first.stdout.split()
    assert address.startswith("0xai_") and re.fullmatch(r"0x[0-9a-fA-F]{40}", eth)
    assert (tmp_path / "node.pem").stat().st_mode & 0o777 == 0o600
    assert run("node", "address", home=tmp_path).stdout.split() == [address, eth]

    friend = "0xai_" + address[5:]  # any valid address will do: our own
    allowed = run("node", "allow", friend, "me", home=tmp_path)
    assert allowed.returncode == 0 and "allowed" in allowed.stdout
    bad = run("node", "allow", "0xai_not-an-address", home=tmp_path)
    assert bad.returncode == 1
    assert "error:" in bad.stderr and "Traceback" not in bad.stderr
    assert run("node", "disallow", friend, home=tmp_path).returncode == 0
    again = run("node", "disallow", friend, home=tmp_path)
    assert again.returncode == 1 and "was not on the allow-list" in again.stderr


def test_bad_node_settings_give_one_line_errors(tmp_path: Path) -> None:
    result = run(
        "node", "start", "--alias", "x" * 30, "--broker", "mqtt://127.0.0.1:1", home=tmp_path
    )
    assert result.returncode == 1
    assert "alias" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_up_starts_a_network_that_heartbeats_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*MESHOPS, "up", "--port", "0", "--home", str(tmp_path), "--nodes", "1"],
        env={**os.environ, "HOME": str(tmp_path / "user")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline() + proc.stdout.readline()
        assert "MeshOps is up" in banner, banner
        port = int(re.search(r"mqtt://127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        beats = threading.Event()

        def on_message(topic: str, payload: bytes) -> None:
            if parse_message(payload).event_type == "HEARTBEAT":
                beats.set()

        client = MqttTransport("127.0.0.1", port, "cli-test", on_message=on_message)
        client.subscribe("naeural/ctrl", 1)
        client.start(timeout=10)
        try:
            assert beats.wait(20), "no heartbeat from the supervisor"
        finally:
            client.stop()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_up_detach_twice_busy_port_and_down_give_one_line_answers(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path / "user")}
    home = str(tmp_path / "net")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MESHOPS, *args], capture_output=True, text=True, timeout=90, env=env
        )

    first = cli("up", "--port", "0", "--home", home, "--nodes", "1", "--no-demo", "--detach")
    assert first.returncode == 0, first.stderr
    port = int(re.search(r"mqtt://127\.0\.0\.1:(\d+)", first.stdout).group(1))  # type: ignore[union-attr]
    try:
        again = cli("up", "--port", "0", "--home", home, "--detach")
        assert again.returncode == 1
        assert again.stderr.startswith("error:") and "meshops down" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
        busy = cli("up", "--port", str(port), "--home", str(tmp_path / "other"), "--detach")
        assert busy.returncode == 1
        assert f"port {port}" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1
    finally:
        down = cli("down", "--home", home)
    assert down.returncode == 0 and "MeshOps stopped" in down.stdout
    twice = cli("down", "--home", home)
    assert twice.returncode == 1 and twice.stderr.startswith("error:")
