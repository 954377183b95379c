"""What an export leaves on disk, and when an earlier export can be kept.

Each export writes its files plus ``<name>.json`` beside them. The JSON records a
*fingerprint* (the recipe version and the versions of the packages that produced the
files) and the SHA-256 of every file. An export is skipped when the JSON's fingerprint
matches the current one and every file still has its recorded hash; otherwise the files are
rebuilt, each written under a temporary name and renamed into place, so an interrupted
export never leaves a half-written model under its final name.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from meshops.errors import ServingError
from meshops.serving.registry import sha256_file

__all__ = [
    "ModelFiles",
    "Shape",
    "build_once",
    "package_versions",
    "replace_atomically",
    "require",
]

Shape = tuple[int | str, ...]
"""A tensor shape; a string names a dynamic dimension (``"batch"``, ``"sequence"``)."""

_MODELS_EXTRA = (
    "model export needs the 'models' extra: pip install 'meshops[models]' "
    "(it pins torch==2.13.0, the CPU build; any other or unpinned torch makes pip pull "
    "a CUDA build of several GB)"
)


@dataclass(frozen=True)
class ModelFiles:
    """One exported model: its main file, the files it needs beside it, and how to feed it."""

    name: str
    path: Path
    extra: tuple[Path, ...] = ()
    inputs: Mapping[str, Shape] = field(default_factory=dict)
    outputs: Mapping[str, Shape] = field(default_factory=dict)
    description: str = ""
    preprocessing: str = ""

    @property
    def metadata_path(self) -> Path:
        return self.path.parent / f"{self.name}.json"

    def to_json(self, fingerprint: Mapping[str, Any]) -> dict[str, Any]:
        """The metadata document; file names are relative to its folder."""
        folder = self.path.parent
        files = (self.path, *self.extra)
        return {
            "name": self.name,
            "file": self.path.name,
            "extra": [p.name for p in self.extra],
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "description": self.description,
            "preprocessing": self.preprocessing,
            "fingerprint": dict(fingerprint),
            "sha256": {p.name: sha256_file(folder / p.name) for p in files},
        }

    @classmethod
    def read(cls, metadata_path: Path) -> ModelFiles:
        """The ``ModelFiles`` an earlier export described in ``metadata_path``."""
        try:
            doc = json.loads(Path(metadata_path).read_text())
            folder = Path(metadata_path).parent
            return cls(
                name=doc["name"],
                path=folder / doc["file"],
                extra=tuple(folder / n for n in doc["extra"]),
                inputs={k: tuple(v) for k, v in doc["inputs"].items()},
                outputs={k: tuple(v) for k, v in doc["outputs"].items()},
                description=doc["description"],
                preprocessing=doc["preprocessing"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ServingError(f"unreadable model metadata {metadata_path}: {exc}") from exc


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` for absent ones), for fingerprints."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _is_current(metadata_path: Path, fingerprint: Mapping[str, Any]) -> bool:
    try:
        doc = json.loads(metadata_path.read_text())
        if doc.get("fingerprint") != dict(fingerprint):
            return False
        folder = metadata_path.parent
        return all(sha256_file(folder / n) == h for n, h in doc["sha256"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def build_once(
    out_dir: Path, name: str, fingerprint: Mapping[str, Any], build: Callable[[Path], ModelFiles]
) -> ModelFiles:
    """``build(out_dir)`` unless ``out_dir`` already holds a current export of ``name``.

    ``build`` writes the files (through ``replace_atomically``) and returns their
    ``ModelFiles``; the metadata is written last, so it only ever describes finished files.
    """
    out_dir = Path(out_dir)
    metadata_path = out_dir / f"{name}.json"
    if _is_current(metadata_path, fingerprint):
        return ModelFiles.read(metadata_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = build(out_dir)
    doc = json.dumps(files.to_json(fingerprint), indent=2, sort_keys=True) + "\n"
    replace_atomically(metadata_path, lambda tmp: tmp.write_text(doc))
    return files


def replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def require(module: str) -> ModuleType:
    """``module`` imported, or a ``ServingError`` naming the ``models`` extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ServingError(f"{_MODELS_EXTRA}; import failed: {exc}") from exc
