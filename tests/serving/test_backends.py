"""Backends: the built-in ones, third-party ones found through the ``meshops.serving`` entry
point group, and clear errors for the rest."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from meshops.errors import ServingError
from meshops.serving import Backend, ModelManifest, backend_names, load_backend
from meshops.serving import backends as backends_module
from meshops.serving.backends import OnnxBackend, PythonBackend


class EchoBackend(Backend):
    """A third-party backend: returns what it is given, doubled."""

    NAME = "echo"

    def load(self, manifest, files, params, options) -> Any:
        class Model:
            def predict(self, inputs: list[Any]) -> list[Any]:
                return [x * 2 for x in inputs]

        return Model()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    ep = EntryPoint(name="echo", value=value, group="meshops.serving")
    monkeypatch.setattr(
        backends_module, "entry_points", lambda group: [ep] if group == "meshops.serving" else []
    )


def test_builtin_backends() -> None:
    assert isinstance(load_backend("onnx"), OnnxBackend)
    assert isinstance(load_backend("python"), PythonBackend)


def test_a_registered_backend_is_found_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, f"{__name__}:EchoBackend")
    assert "echo" in backend_names()
    backend = load_backend("echo")
    manifest = ModelManifest(name="m", backend="echo")
    assert backend.load(manifest, {}, None, {}).predict([1, 2]) == [2, 4]


def test_unknown_or_broken_backends_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServingError, match=r"unknown backend 'tpu'; known: onnx, python"):
        load_backend("tpu")
    fake_entry_points(monkeypatch, f"{__name__}:fake_entry_points")
    with pytest.raises(ServingError, match="not a Backend subclass"):
        load_backend("echo")
    fake_entry_points(monkeypatch, "no_such_module_here:Thing")
    with pytest.raises(ServingError, match="failed to load"):
        load_backend("echo")


def test_python_backend_needs_an_installed_factory(tmp_path: Path) -> None:
    backend = PythonBackend()
    bad = ModelManifest(name="m", backend="python", factory="no_such_module:make")
    with pytest.raises(ServingError, match="cannot import no_such_module:make"):
        backend.load(bad, {}, None, {})
    with pytest.raises(ServingError, match="factory 'module:name'"):
        backend.load(ModelManifest(name="m", backend="python"), {}, None, {})
