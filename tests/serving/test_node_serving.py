"""Serving on a real node, driven by the SDK over a real broker: a model pushed in verified
chunks, two pipelines sharing one model server, each getting its own results, the server
killed and restarted while the node lives on, a tampered upload refused."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import cv2
import pytest
from sklearn.datasets import load_sample_image

from meshops.protocol import Command, NotificationCode
from meshops.sdk.errors import DeployError
from meshops.serving.zoo import ModelFiles
from meshops.transport import MosquittoBroker
from tests.sdk.conftest import Net, network
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def net(mosquitto: MosquittoBroker, tmp_path: Path):
    with network(mosquitto.url, tmp_path) as made:
        yield made


def photo_folder(root: Path, name: str) -> Path:
    folder = root / name.split(".")[0]
    folder.mkdir()
    cv2.imwrite(str(folder / name), load_sample_image(name)[..., ::-1])  # saved as BGR
    return folder


def classify(folder: Path, instance: str) -> dict:
    return {
        "capture": {"URL": str(folder), "LOOP": True, "CAP_RESOLUTION": 4},
        "plugins": [
            {
                "signature": "IMAGE_CLASSIFY_01",
                "instance_id": instance,
                "AI_ENGINE": "effnet",
                "AI_ENGINE_PARAMS": {"MAX_WAIT_MS": 20},
            }
        ],
    }


def test_pushed_model_serves_two_pipelines_through_one_server(
    net: Net, zoo: dict[str, ModelFiles], tmp_path: Path
) -> None:
    session, node = net.session, net.node
    stored = session.push_model(
        "n1", "effnet", {"model": zoo["efficientnet_lite0"].path}, task="image-classification"
    )
    assert stored["NAME"] == "effnet" and node.models.get("effnet").digest == stored["DIGEST"]
    wait_until(lambda: session.nodes_with_model("effnet"), timeout=10)  # from its heartbeat
    assert [n.alias for n in session.nodes_with_model("effnet")] == ["n1"]

    china = photo_folder(tmp_path, "china.jpg")
    flower = photo_folder(tmp_path, "flower.jpg")
    stream = session.stream("n1", timeout=120)
    session.deploy("n1", "palaces", "ImageFolder", **classify(china, "a"))
    session.deploy("n1", "flowers", "ImageFolder", **classify(flower, "b"))

    labels: dict[str, set[str]] = {"palaces": set(), "flowers": set()}

    def collect(until: int) -> None:
        for payload in stream:
            if payload.pipeline in labels and "LABEL" in payload.data:
                labels[payload.pipeline].add((payload["LABEL"], payload["FILE"]))
            if (
                min(len(v) for v in labels.values())
                and sum(1 for v in labels.values() for _ in v) >= until
            ):
                return

    collect(2)
    assert labels == {  # each pipeline gets its own photos' classes
        "palaces": {("palace", "china.jpg")},
        "flowers": {("daisy", "flower.jpg")},
    }
    servers = node.serving.servers()
    assert len(servers) == 1 and servers[0]["USERS"] == 2  # one server, shared

    old_pid = servers[0]["PID"]
    os.kill(old_pid, signal.SIGKILL)  # a model server crash...
    wait_until(
        lambda: (
            node.serving.servers()[0]["RESTARTS"] == 1
            and node.serving.servers()[0]["STATE"] == "ready"
        ),
        timeout=60,
    )
    assert node.serving.servers()[0]["PID"] != old_pid  # ...is restarted; the node lives on
    labels = {"palaces": set(), "flowers": set()}
    collect(2)
    assert labels["palaces"] == {("palace", "china.jpg")}
    stream.close()

    session.attach("n1", "palaces").close()
    assert node.serving.servers()[0]["USERS"] == 1
    session.attach("n1", "flowers").close()
    wait_until(lambda: node.serving.servers() == [], timeout=10)  # the last user stops it


def test_tampered_or_code_uploads_are_refused_and_nothing_is_lost(net: Net, tmp_path: Path) -> None:
    session, node = net.session, net.node
    before = [m.ref for m in node.models.list()]
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07" * 1000)
    link = session._link  # noqa: SLF001 - sending a chunk that lies about its hash
    info = session.wait_for_node("n1", timeout=10)
    payload = {
        "OP": "CHUNK",
        "UPLOAD_ID": "bad1",
        "SHA256": hashlib.sha256(b"other").hexdigest(),
        "SIZE": 2000,
        "OFFSET": 0,
        "DATA": __import__("base64").b64encode(model.read_bytes()).decode(),
    }
    link.command(info.address, "n1", "admin_pipeline", Command.MODEL_UPLOAD, payload, [], timeout=5)
    commit = {
        "OP": "COMMIT",
        "MANIFEST": {"name": "m", "files": {"model": payload["SHA256"]}},
        "UPLOADS": {"model": "bad1"},
    }
    from meshops.sdk.transactions import Expect

    expect = Expect(
        NotificationCode.MODEL_STORED_OK, (NotificationCode.MODEL_STORED_FAILED,), "admin_pipeline"
    )
    with pytest.raises(DeployError, match="hash mismatch"):
        link.command(
            info.address, "n1", "admin_pipeline", Command.MODEL_UPLOAD, commit, [expect], timeout=10
        )
    python_model = {
        "OP": "COMMIT",
        "MANIFEST": {"name": "m", "backend": "python", "factory": "os:system"},
        "UPLOADS": {},
    }
    with pytest.raises(DeployError, match="only onnx models"):
        link.command(
            info.address,
            "n1",
            "admin_pipeline",
            Command.MODEL_UPLOAD,
            python_model,
            [expect],
            timeout=10,
        )
    assert [m.ref for m in node.models.list()] == before
    assert not list(node.models.uploads_dir.iterdir())
    with pytest.raises(DeployError, match="AI_ENGINE 'm'.*no model 'm'"):
        session.deploy(
            "n1",
            "p",
            "Void",
            plugins=[{"signature": "IMAGE_CLASSIFY_01", "instance_id": "x", "AI_ENGINE": "m"}],
            timeout=10,
        )
