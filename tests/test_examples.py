"""The examples under ``examples/`` run, as documented, against a local network.

One network (broker, supervisor, one worker) is started for the module, with ``HOME``
pointed at a temporary folder whose ``~/.meshops/client.pem`` is the key the network allows;
each example then runs as a subprocess with ``--broker``, as a user would run it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.local import LocalNetwork, NetworkInfo, stop
from meshops.local.state import STATE_FILE
from meshops.protocol import NodeKey
from meshops.serving import ModelRegistry
from meshops.serving.catalog import prepare_models

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def network(
    tmp_path_factory: pytest.TempPathFactory, zoo: dict, zoo_dir: Path
) -> Iterator[tuple[NetworkInfo, Path]]:
    home = tmp_path_factory.mktemp("home")
    key = NodeKey.generate()
    key.save(home / ".meshops" / "client.pem")
    net = LocalNetwork(home / "up", port=0, workers=1, client_key=key)
    info = net.start(timeout=30, demo=False)
    # what `meshops models prepare` does: the zoo's models in the nodes' shared registry
    registry = ModelRegistry(home / "up" / "models")
    prepare_models(registry, ["efficientnet_lite0", "minilm"], work_dir=zoo_dir)
    registry.close()
    try:
        yield info, home
    finally:
        if (home / "up" / STATE_FILE).exists():
            stop(home / "up", timeout=10)


def run_example(network: tuple[NetworkInfo, Path], name: str, *args: str) -> str:
    info, home = network
    script = EXAMPLES / name / "run.py"
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(script), "--broker", info.broker_url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output
    return done.stdout


def test_video_analytics(network: tuple[NetworkInfo, Path]) -> None:
    out = run_example(network, "video_analytics", "--node", "worker-1", "--timeout", "45")
    rows = re.findall(r"^frame +\d+: count=(\d) shown=(\d)", out, re.M)
    assert len(rows) == 30  # 3 s at 10 fps, one payload per frame
    counts = [int(count) for count, _ in rows]
    assert counts == [int(shown) for _, shown in rows]  # the Haar cascade finds every face
    assert {0, 1, 2, 3} == set(counts)
    alerts = out.count("ALERT")
    assert alerts == counts.count(3) > 0  # ALERT_AT 3
    assert re.search(rf"summary: frames=30/30 detections={sum(counts)} alerts={alerts}$", out, re.M)


def test_sensor_anomaly(network: tuple[NetworkInfo, Path]) -> None:
    out = run_example(network, "sensor_anomaly", "--alerts", "3", "--timeout", "40")
    alerts = re.findall(r"^ALERT #\d+: .* \(injected spike: (True|False)\)$", out, re.M)
    assert len(alerts) == 3
    assert alerts.count("True") == 3  # every alert is an injected spike, no false positive
    assert "done: alerts=3 injected=3" in out


def test_custom_code(network: tuple[NetworkInfo, Path]) -> None:
    out = run_example(network, "custom_code", "--discover", "6")
    assert "nodes: 2 seen, 2 online and allowing us" in out
    rows = re.findall(r"^(supervisor|worker-1) +(\S+) +(\S+) +\S+ +(\S+)", out, re.M)
    assert sorted(r[0] for r in rows) == ["supervisor", "worker-1"]
    for _, mean, std, norm in rows:
        assert abs(float(mean) - 10) < 0.1 and abs(float(std) - 2) < 0.1
        assert float(norm) == 40000.0  # ||ones(200x200) @ ones(200x200)||_F
    assert "done: 2 ok, 0 failed" in out


def test_image_classification(network: tuple[NetworkInfo, Path]) -> None:
    out = run_example(network, "image_classification", "--node", "worker-1", "--timeout", "60")
    rows = dict(re.findall(r"^(\S+\.png) +(\w+) \[\d+\]", out, re.M))
    assert len(rows) == 6
    assert rows["china.png"] == rows["china-mirrored.png"] == "palace"
    assert rows["flower.png"] == rows["flower-mirrored.png"] == "daisy"
    assert re.search(r"^summary: images=6/6 ", out, re.M)


def test_text_embedding(network: tuple[NetworkInfo, Path]) -> None:
    out = run_example(network, "text_embedding", "--node", "worker-1", "--timeout", "60")
    pairs = re.findall(r"^\[(\d)\] (.+)\n     nearest: (.+) \((\S+)\)( +SIMILAR)?$", out, re.M)
    found = {text: (nearest, bool(mark)) for _, text, nearest, _, mark in pairs}
    # each paraphrase finds the ticket it rephrases, and is marked SIMILAR
    assert found["I was charged an incorrect sum on my bill."] == (
        "My invoice shows the wrong amount.",
        True,
    )
    assert found["I forgot my password and cannot log in."] == ("How do I reset my password?", True)
    assert found["Opening the camera makes the application crash."] == (
        "The app crashes when I open the camera.",
        True,
    )
    assert found["The weather in Lisbon is lovely in spring."][1] is False  # unrelated
    assert "summary: texts=7/7 similar=3" in out
