"""Model servers: own process, shared, started and stopped with their users, restarted after
a crash, dynamic batching across instances, each instance gets its own results."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

from meshops.errors import ServingError
from meshops.serving import ModelRegistry, ServingManager
from tests.serving.models import affine_model
from tests.waiting import wait_until

W = np.arange(12, dtype=np.float32).reshape(4, 3)
B = np.array([0.5, -1.0, 2.0], dtype=np.float32)


@pytest.fixture
def serving(tmp_path: Path):
    registry = ModelRegistry(tmp_path / "models")
    registry.add("affine", {"model": affine_model(tmp_path / "a.onnx", W, B)}, task="raw")
    events: list[tuple[str, dict]] = []
    manager = ServingManager(registry, on_event=lambda kind, d: events.append((kind, dict(d))))
    manager.events = events  # type: ignore[attr-defined]
    yield manager
    manager.stop_all()
    registry.close()


def expected(x: np.ndarray) -> np.ndarray:
    return x @ W + B


def test_a_server_runs_in_its_own_process_and_answers(serving: ServingManager) -> None:
    client = serving.acquire("p/a/1", "affine")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    answer = client.infer(list(x))
    got = np.stack([r["Y"] for r in answer.results])
    np.testing.assert_allclose(got, expected(x), rtol=1e-5)
    pid = serving.server_for("p/a/1").pid
    assert pid != os.getpid() and psutil.Process(pid).is_running()
    assert serving.servers()[0]["STATE"] == "ready"
    assert serving.servers()[0]["PROVIDERS"] == ["CPUExecutionProvider"]


def test_instances_share_one_server_until_the_last_goes(serving: ServingManager) -> None:
    a = serving.acquire("p1/a/1", "affine")
    b = serving.acquire("p2/b/1", "affine")
    assert a.server is b.server and len(serving.servers()) == 1
    assert serving.servers()[0]["USERS"] == 2
    a.infer([np.ones(4, np.float32)])
    pid = a.server.pid
    a.close()
    assert serving.servers()[0]["USERS"] == 1 and psutil.pid_exists(pid)
    b.close()
    assert serving.servers() == []
    wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", timeout=10
    )
    assert ("stopped", "stopped") in [(k, d["STATE"]) for k, d in serving.events]


def test_different_server_settings_make_a_different_server(serving: ServingManager) -> None:
    a = serving.acquire("p/a/1", "affine", {"MAX_BATCH": 2})
    b = serving.acquire("p/b/1", "affine", {"MAX_BATCH": 4})
    c = serving.acquire("p/c/1", "affine", {"MAX_BATCH": 4, "TIMEOUT_S": 5})
    assert a.server is not b.server and b.server is c.server


def test_batches_mix_instances_and_route_each_its_own_results(serving: ServingManager) -> None:
    clients = [
        serving.acquire(f"p{i}/s/1", "affine", {"MAX_BATCH": 64, "MAX_WAIT_MS": 300})
        for i in range(4)
    ]
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(3, 4)).astype(np.float32) for _ in clients]
    clients[0].infer([inputs[0][0]])  # the server is up before the race starts
    answers: dict[int, object] = {}
    start = threading.Barrier(len(clients))

    def ask(i: int) -> None:
        start.wait()
        answers[i] = clients[i].infer(list(inputs[i]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i, answer in answers.items():
        got = np.stack([r["Y"] for r in answer.results])
        np.testing.assert_allclose(got, expected(inputs[i]), rtol=1e-5)  # its own, in order
    batches = [answer.batches for answer in answers.values()]
    assert len(answers) == 4
    # a 300 ms window: the four requests (12 inputs) are served together in one batch
    assert all(b == batches[0] for b in batches) and len(batches[0]) == 1


def test_a_request_larger_than_max_batch_is_split(serving: ServingManager) -> None:
    client = serving.acquire("p/a/1", "affine", {"MAX_BATCH": 4, "MAX_WAIT_MS": 0})
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    answer = client.infer(list(x))
    assert len(answer.batches) == 3  # 4 + 4 + 2
    np.testing.assert_allclose(np.stack([r["Y"] for r in answer.results]), expected(x), rtol=1e-5)


def test_large_frames_travel_through_shared_memory(serving: ServingManager, tmp_path: Path):
    client = serving.acquire("p/a/1", "haar_face")
    frame = np.zeros((480, 640, 3), np.uint8)  # 900 KiB: over the inline limit
    packed = client._arenas[0].pack([frame, "small"])
    assert type(packed[0]).__name__ == "ShmRef" and packed[1] == "small"
    assert client.infer([frame, frame]).results == [{"BOXES": [], "COUNT": 0}] * 2


def test_a_crashed_server_is_reported_and_restarted(serving: ServingManager) -> None:
    client = serving.acquire("p/a/1", "affine")
    x = np.ones((1, 4), np.float32)
    client.infer(list(x))
    server = client.server
    old = server.pid
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: server.restarts == 1 and server.state == "ready", timeout=30)
    assert server.pid != old
    np.testing.assert_allclose(client.infer(list(x)).results[0]["Y"], expected(x)[0], rtol=1e-5)
    kinds = [k for k, _ in serving.events]
    assert kinds.index("crashed") < len(kinds) - 1 - kinds[::-1].index("started")
    crash = next(d for k, d in serving.events if k == "crashed")
    assert crash["EXIT_CODE"] == -signal.SIGKILL and "died" in crash["ERROR"]


def test_a_model_that_cannot_load_fails_clearly(serving: ServingManager, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    serving.registry.add("broken", {"model": broken}, task="raw")
    client = serving.acquire("p/a/1", "broken")
    with pytest.raises(ServingError, match="broken@1 failed: ServingError: .*cannot load it"):
        client.infer([np.ones(4, np.float32)])
    assert serving.servers()[0]["STATE"] == "failed"


def test_bad_inputs_fail_that_request_only(serving: ServingManager) -> None:
    client = serving.acquire("p/a/1", "affine")
    with pytest.raises(ServingError, match="affine@1"):
        client.infer([np.ones(7, np.float32)])  # wrong width
    assert client.infer([np.ones(4, np.float32)]).results[0]["Y"].shape == (3,)


def test_engine_errors_are_named(serving: ServingManager) -> None:
    with pytest.raises(ServingError, match="no model 'nope'"):
        serving.acquire("p/a/1", "nope")
    with pytest.raises(ValueError, match="MAX_BATCH"):
        serving.resolve("affine", {"MAX_BATCH": 0})
    client = serving.acquire("p/a/1", "affine", {"DEVICE": "cuda"})
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ServingError, match="no CUDA provider"):
            client.infer([np.ones(4, np.float32)])
    else:  # on a GPU machine with onnxruntime-gpu the model runs on CUDA
        client.infer([np.ones(4, np.float32)])
        assert serving.servers()[0]["PROVIDERS"][0] == "CUDAExecutionProvider"


def test_a_leaking_server_is_restarted_at_max_rss(serving: ServingManager) -> None:
    serving.registry.register(
        {"name": "leaky", "backend": "python", "factory": "tests.serving.leaky:make"}
    )
    client = serving.acquire("p/a/1", "leaky", {"MAX_RSS_MB": 200})
    server = client.server
    first = server.pid
    held = 0
    for _ in range(8):  # 64 MiB more per call: past 200 MiB within a few calls
        try:
            held = client.infer([0]).results[0]["HELD_MIB"]
        except ServingError:
            break  # the watchdog killed it while we asked
        if server.restarts:
            break
    wait_until(lambda: server.restarts == 1 and server.state == "ready", timeout=30)
    assert server.pid != first and held >= 64
    crash = next(d for k, d in serving.events if k == "crashed")
    assert "passed MAX_RSS_MB 200" in crash["ERROR"]
    assert client.infer([0]).results[0]["HELD_MIB"] == 64  # a fresh process, memory back


def test_a_server_that_stops_answering_is_restarted(serving: ServingManager) -> None:
    serving.registry.register(
        {"name": "stuck", "backend": "python", "factory": "tests.serving.leaky:stuck"}
    )
    client = serving.acquire("p/a/1", "stuck", {"TIMEOUT_S": 0.5, "MAX_WAIT_MS": 0})
    assert client.infer(["fine"]).results == [{"OK": True}]
    server = client.server
    first = server.pid
    for _ in range(2):  # two requests time out: the server is alive but silent
        with pytest.raises(ServingError, match="no answer within 0.5 s"):
            client.infer(["hang"])
    wait_until(lambda: server.restarts == 1 and server.state == "ready", timeout=30)
    assert server.pid != first
    crash = next(d for k, d in serving.events if k == "crashed")
    assert "stopped answering (2 requests timed out)" in crash["ERROR"]
    assert client.infer(["fine"]).results == [{"OK": True}]


def test_blocks_are_unmapped_only_when_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshops.serving import shm
    from meshops.serving.shm import Arena, ShmReader

    # Here reader and arenas share one process and so one resource tracker: the reader must
    # not unregister the blocks the arenas registered (in a server it has its own tracker).
    monkeypatch.setattr(shm.resource_tracker, "unregister", lambda name, rtype: None)

    arenas = [Arena(capacity=1 << 16) for _ in range(3)]
    reader = ShmReader(keep=1)
    try:
        small = np.full((64, 256), 7, np.uint8)  # 16 KiB: travels inline
        assert arenas[0].pack([small])[0] is small
        big = [np.full((256, 256), i, np.uint8) for i in range(3)]  # 64 KiB: shared memory
        views = [reader.unpack(a.pack([f]))[0] for a, f in zip(arenas, big, strict=True)]
        # three blocks mapped although keep=1: arrays point into all of them
        assert len(reader._open) == 3 and [int(v[0, 0]) for v in views] == [0, 1, 2]
        del views
        reader.trim()  # what the server does once no request is queued
        assert len(reader._open) == 1
    finally:
        reader.close()
        for arena in arenas:
            arena.close()
