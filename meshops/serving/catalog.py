"""``meshops models prepare``: export the zoo's models and register them in a registry.

Each export becomes one registry version named by the first 12 hex digits of its model
file's SHA-256, so preparing again registers nothing new unless the export changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meshops.errors import ServingError
from meshops.serving.registry import ModelRegistry, sha256_file
from meshops.serving.spec import ModelManifest

__all__ = ["DEFAULT_MODELS", "SERVING", "prepare_models"]

SERVING: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {
        "task": "image-classification",
        "options": {"labels": "imagenet", "top_k": 5},
        "max_batch": 8,
        "max_wait_ms": 5.0,
    },
    "minilm": {"task": "text-embedding", "options": {"max_length": 256}, "max_batch": 32},
    "digits": {"task": "tabular", "max_batch": 64, "max_wait_ms": 2.0},
}
"""How each zoo model is served (task, options, batching defaults)."""
DEFAULT_MODELS = tuple(SERVING)


def prepare_models(
    registry: ModelRegistry, names: Iterable[str] = DEFAULT_MODELS, *, work_dir: Path
) -> list[ModelManifest]:
    """Export (or reuse) ``names`` under ``work_dir`` and register them; the manifests."""
    from meshops.serving.zoo import prepare

    names = list(names)
    unknown = [n for n in names if n not in SERVING]
    if unknown:
        raise ServingError(
            f"unknown model(s) {', '.join(unknown)}; can prepare: {', '.join(SERVING)} "
            "(haar_face and aruco_4x4 are built in)"
        )
    manifests = []
    for exported in prepare(names, work_dir):
        files: dict[str, Path] = {"model": exported.path}
        for extra in exported.extra:
            if extra.name.endswith("tokenizer.json"):
                files["tokenizer"] = extra
        version = sha256_file(exported.path)[:12]
        manifests.append(
            registry.add(
                exported.name,
                files,
                version=version,
                description=exported.description,
                **SERVING[exported.name],
            )
        )
    return manifests
