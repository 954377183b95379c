"""Backends turn a stored model into something that predicts a batch: ``Model.predict``.

Built in: ``onnx`` (ONNX Runtime; the CUDA provider when a GPU and onnxruntime-gpu are there
and ``DEVICE`` allows it) and ``python`` (a factory from an installed module, for models
such as OpenCV cascades or scikit-learn estimators). A package adds a backend with an entry
point in the ``meshops.serving`` group whose value is a ``Backend`` subclass.

Backends run inside the model server process, never in the node's.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol

from meshops.errors import ServingError
from meshops.serving.spec import EngineParams, ModelManifest
from meshops.serving.tasks import make_task

__all__ = ["Backend", "Model", "OnnxBackend", "PythonBackend", "backend_names", "load_backend"]

log = logging.getLogger(__name__)


class Model(Protocol):
    """A loaded model: one output per input, in order."""

    def predict(self, inputs: list[Any]) -> list[Any]: ...


class Backend(ABC):
    """Subclass, set ``NAME``, implement ``load``; register under ``meshops.serving``."""

    NAME: ClassVar[str]

    @abstractmethod
    def load(
        self,
        manifest: ModelManifest,
        files: Mapping[str, Path],
        params: EngineParams,
        options: Mapping[str, Any],
    ) -> Model:
        """Build the model; ``options`` are the manifest's merged with the instance's."""

    def describe(self) -> dict[str, Any]:
        """What the server reports once loaded (providers, threads...)."""
        return {"backend": self.NAME}


class OnnxBackend(Backend):
    NAME = "onnx"

    def __init__(self) -> None:
        self.providers: list[str] = []

    def load(
        self,
        manifest: ModelManifest,
        files: Mapping[str, Path],
        params: EngineParams,
        options: Mapping[str, Any],
    ) -> Model:
        import onnxruntime as ort

        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available
        if params.device == "cuda" and not has_cuda:
            raise ServingError(
                f"{manifest.ref}: DEVICE cuda asked for, but this onnxruntime has no CUDA "
                f"provider (has: {', '.join(available)}); install onnxruntime-gpu"
            )
        use_cuda = has_cuda and params.device in ("auto", "cuda")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else []
        providers = providers or ["CPUExecutionProvider"]
        session_options = ort.SessionOptions()
        if params.threads:
            session_options.intra_op_num_threads = params.threads
        try:
            session = ort.InferenceSession(
                str(files["model"]), sess_options=session_options, providers=providers
            )
        except Exception as exc:
            raise ServingError(f"{manifest.ref}: ONNX Runtime cannot load it: {exc}") from exc
        self.providers = session.get_providers()
        return make_task(manifest.task, session, files, options)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.NAME, "providers": self.providers}


class PythonBackend(Backend):
    """``manifest.factory`` = ``"module:callable"``, called as ``callable(files, options)``.

    Only code already installed on the node runs: a client can send ONNX files, never code.
    """

    NAME = "python"

    def load(
        self,
        manifest: ModelManifest,
        files: Mapping[str, Path],
        params: EngineParams,
        options: Mapping[str, Any],
    ) -> Model:
        if not manifest.factory or ":" not in manifest.factory:
            raise ServingError(f"{manifest.ref}: the python backend needs factory 'module:name'")
        module_name, _, attribute = manifest.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ServingError(f"{manifest.ref}: cannot import {manifest.factory}: {exc}") from exc
        model = factory(files, options)
        if not callable(getattr(model, "predict", None)):
            raise ServingError(f"{manifest.ref}: {manifest.factory} returned no predict()")
        return model


_BUILTIN: dict[str, type[Backend]] = {"onnx": OnnxBackend, "python": PythonBackend}


def _registered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="meshops.serving")}


def backend_names() -> list[str]:
    return sorted({*_BUILTIN, *_registered()})


def load_backend(name: str) -> Backend:
    """A new backend instance by name; ServingError listing the known ones."""
    cls = _BUILTIN.get(name)
    if cls is None:
        ep = _registered().get(name)
        if ep is None:
            raise ServingError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
        try:
            cls = ep.load()
        except Exception as exc:
            raise ServingError(f"backend {name!r} ({ep.value}) failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise ServingError(f"backend {name!r} ({ep.value}) is not a Backend subclass")
    return cls()
