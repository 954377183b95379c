"""Model serving: shared inference servers with dynamic batching, and a model registry.

A plugin names a model with ``AI_ENGINE``; the node's ``ServingManager`` runs one server
process per model and parameters, shared by every pipeline that asks, batches their inputs
and routes each instance its own results (``PluginInputs.inferences``). Models live in a
``ModelRegistry`` by name, version and content hash. See ``docs/serving.md``.
"""

from meshops.serving.backends import Backend, Model, backend_names, load_backend
from meshops.serving.manager import EngineClient, Inference, ModelServer, ServingManager
from meshops.serving.registry import BUILTIN_MODELS, ModelRegistry, sha256_file
from meshops.serving.spec import TASKS, EngineParams, ModelManifest

__all__ = [
    "BUILTIN_MODELS",
    "TASKS",
    "Backend",
    "EngineClient",
    "EngineParams",
    "Inference",
    "Model",
    "ModelManifest",
    "ModelRegistry",
    "ModelServer",
    "ServingManager",
    "backend_names",
    "load_backend",
    "sha256_file",
]
