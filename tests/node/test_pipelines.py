"""The pipeline manager: merge, validate before touching anything, isolate failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from meshops.capture.base import CaptureItem, DataCapture
from meshops.errors import ConfigError, PluginError
from meshops.node.instance import CommandOutcome
from meshops.node.pipelines import PipelineEvents, PipelineManager, merge_pipeline
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs
from meshops.plugins.registry import load_captures, load_plugins

from .sdk import wait_for

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self) -> None:
        self.payloads: list[tuple[str, str, str, dict[str, Any]]] = []
        self.errors: list[tuple[str, ...]] = []
        self.commands: list[CommandOutcome] = []
        self.lock = threading.Lock()

    def events(self) -> PipelineEvents:
        def emit(p: str, s: str, i: str, body: Mapping[str, Any]) -> None:
            with self.lock:
                self.payloads.append((p, s, i, dict(body)))

        return PipelineEvents(
            emit=emit,
            instance_error=lambda p, s, i, m: self.errors.append((p, s, i, m)),
            capture_error=lambda p, m: self.errors.append((p, m)),
            command_done=lambda p, s, i, o: self.commands.append(o),
        )

    def of(self, instance_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, _, iid, body in self.payloads if iid == instance_id]


class ThresholdConfig(PluginConfig):
    threshold: float = 0.0


class Crashy(BusinessPlugin):
    """Fails every other call, answers commands, proves the instance lives on."""

    SIGNATURE = "CRASHY_01"
    CONFIG = ThresholdConfig

    def on_init(self) -> None:
        self.calls = 0

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("odd call")
        return {"CALLS": self.calls, "THRESHOLD": self.config.threshold}  # type: ignore[attr-defined]

    def on_command(self, command: Any, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if params.get("FAIL"):
            raise ValueError("asked to fail")
        return {"DONE": True}


class BrokenCapture(DataCapture):
    TYPE = "Broken"

    def open(self) -> None:
        raise OSError("camera unplugged")

    def read(self) -> CaptureItem | None:
        return None


@pytest.fixture
def manager() -> Iterator[tuple[PipelineManager, Recorder]]:
    plugins, captures = load_plugins(), load_captures()
    plugins.register("CRASHY_01", Crashy)
    captures.register("Broken", BrokenCapture)
    recorder = Recorder()
    mgr = PipelineManager("n1", plugins, captures, recorder.events())
    try:
        yield mgr, recorder
    finally:
        mgr.stop_all()


def void(name: str, *instances: tuple[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    by_sig: dict[str, list[dict[str, Any]]] = {}
    for sig, inst in instances:
        by_sig.setdefault(sig, []).append(inst)
    plugins = [{"SIGNATURE": s, "INSTANCES": i} for s, i in by_sig.items()]
    return {"NAME": name, "TYPE": "Void", "CAP_RESOLUTION": 20, "PLUGINS": plugins, **extra}


FAST = {"PROCESS_DELAY": 0.05, "ALLOW_EMPTY_INPUTS": True}


def test_merge_keeps_unmentioned_instances_and_merges_keys() -> None:
    old = void("p", ("A", {"INSTANCE_ID": "a1", "X": 1, "Y": 2}), ("B", {"INSTANCE_ID": "b1"}))
    merged = merge_pipeline(
        old,
        {
            "NAME": "p",
            "PLUGINS": [
                {
                    "SIGNATURE": "A",
                    "INSTANCES": [{"INSTANCE_ID": "a1", "X": 10}, {"INSTANCE_ID": "a2"}],
                }
            ],
        },
    )
    instances = {
        (p["SIGNATURE"], i["INSTANCE_ID"]): i for p in merged["PLUGINS"] for i in p["INSTANCES"]
    }
    assert instances[("A", "a1")] == {"INSTANCE_ID": "a1", "X": 10, "Y": 2}
    assert ("A", "a2") in instances and ("B", "b1") in instances
    assert merged["TYPE"] == "Void"


def test_bad_config_names_the_field_and_changes_nothing(manager) -> None:
    mgr, rec = manager
    stored: list[dict[str, Any]] = []
    good = void("p", ("CRASHY_01", {"INSTANCE_ID": "c1", "THRESHOLD": 1.5, **FAST}))
    assert mgr.apply(good, store=stored.append) == [("CRASHY_01", "c1")]
    with pytest.raises(PluginError, match="THRESHOLD"):
        mgr.apply(
            void("p", ("CRASHY_01", {"INSTANCE_ID": "c1", "THRESHOLD": "high"})),
            store=stored.append,
        )
    with pytest.raises(ConfigError, match="CAP_RESOLUTION"):
        mgr.apply({"NAME": "p", "CAP_RESOLUTION": -1}, store=stored.append)
    with pytest.raises(PluginError, match="unknown plugin 'NOPE_01'"):
        mgr.apply(void("p", ("NOPE_01", {"INSTANCE_ID": "x"})), store=stored.append)
    with pytest.raises(PluginError, match="unknown capture type 'Nowhere'"):
        mgr.apply({"NAME": "q", "TYPE": "Nowhere"}, store=stored.append)
    with pytest.raises(PluginError) as every:  # every problem at once, not only the first
        mgr.apply(
            void(
                "q",
                ("NOPE_01", {"INSTANCE_ID": "x"}),
                ("CRASHY_01", {"INSTANCE_ID": "c2", "THRESHOLD": "high"}),
                CAP_RESOLUTION=-1,
            ),
            store=stored.append,
        )
    assert all(
        part in str(every.value)
        for part in ("CAP_RESOLUTION", "unknown plugin 'NOPE_01'", "THRESHOLD")
    )
    assert len(stored) == 1, "only the valid config was stored"
    assert mgr.config("p")["PLUGINS"][0]["INSTANCES"][0]["THRESHOLD"] == 1.5
    assert wait_for(lambda: len(rec.of("c1")) >= 2, 5), "the old instance keeps running"


def test_a_failing_plugin_is_reported_and_keeps_running(manager) -> None:
    mgr, rec = manager
    mgr.apply(void("p", ("CRASHY_01", {"INSTANCE_ID": "c1", **FAST})), store=lambda c: None)
    assert wait_for(lambda: len(rec.of("c1")) >= 3 and len(rec.errors) >= 3, 5)
    assert all("odd call" in e[-1] for e in rec.errors)
    mgr.instance_command("p", ("CRASHY_01", "c1"), "GO", {})
    mgr.instance_command("p", ("CRASHY_01", "c1"), "GO", {"FAIL": True})
    assert wait_for(lambda: len(rec.commands) == 2, 5)
    assert [c.ok for c in rec.commands] == [True, False]
    assert "asked to fail" in rec.commands[1].info


def test_a_broken_capture_does_not_stop_other_pipelines(manager) -> None:
    mgr, rec = manager
    mgr.apply({"NAME": "bad", "TYPE": "Broken", "PLUGINS": []}, store=lambda c: None)
    mgr.apply(void("good", ("ECHO_01", {"INSTANCE_ID": "e1", **FAST})), store=lambda c: None)
    assert wait_for(lambda: any("camera unplugged" in e[-1] for e in rec.errors), 5)
    assert wait_for(lambda: len(rec.of("e1")) >= 3, 5)
    assert sorted(mgr.names()) == ["bad", "good"]


def test_unchanged_instances_are_not_restarted(manager) -> None:
    mgr, rec = manager
    config = void("p", ("ECHO_01", {"INSTANCE_ID": "e1", **FAST}))
    assert mgr.apply(config, store=lambda c: None) == [("ECHO_01", "e1")]
    assert wait_for(lambda: len(rec.of("e1")) >= 3, 5)
    assert mgr.apply(config, store=lambda c: None) == []  # the SDK resends whole pipelines
    counts = [body["COUNT"] for body in rec.of("e1")]
    assert wait_for(lambda: rec.of("e1")[-1]["COUNT"] > counts[-1], 5)
    assert [body["COUNT"] for body in rec.of("e1")] == list(range(1, len(rec.of("e1")) + 1))


def test_config_change_reaches_the_running_instance(manager) -> None:
    mgr, rec = manager
    mgr.apply(
        void("p", ("ECHO_01", {"INSTANCE_ID": "e1", "PREFIX": "a", **FAST})), store=lambda c: None
    )
    changed = mgr.apply(
        void("p", ("ECHO_01", {"INSTANCE_ID": "e1", "PREFIX": "b"})), store=lambda c: None
    )
    assert changed == [("ECHO_01", "e1")]
    assert wait_for(lambda: rec.of("e1") and rec.of("e1")[-1]["PREFIX"] == "b", 5)


def test_on_demand_pipeline_gets_data_by_command(manager) -> None:
    mgr, rec = manager
    mgr.apply(
        {
            "NAME": "od",
            "TYPE": "OnDemandInput",
            "PLUGINS": [
                {
                    "SIGNATURE": "ECHO_01",
                    "INSTANCES": [{"INSTANCE_ID": "e1", "PROCESS_DELAY": 0.05}],
                }
            ],
        },
        store=lambda c: None,
    )
    mgr.feed("od", {"V": 1})
    mgr.feed("od", {"V": 2})
    assert wait_for(lambda: sum(len(b["DATA"]) for b in rec.of("e1")) == 2, 5)
    data = [d for body in rec.of("e1") for d in body["DATA"]]
    assert data == [{"V": 1}, {"V": 2}]
    with pytest.raises(ConfigError, match="no pipeline named 'nope'"):
        mgr.feed("nope", {})
