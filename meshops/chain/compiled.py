"""The committed contract artifacts (ABI + bytecode), loaded from package data.

Kept apart from ``build`` so that running a node never needs (or imports) the compiler.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshops.chain.errors import ArtifactError

__all__ = ["ARTIFACTS_DIR", "CONTRACT_NAMES", "Artifact", "all_abis", "load_artifact"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACT_NAMES = ("MeshToken", "MeshController", "MeshLicense", "MeshRewards", "MeshEscrow")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: str


@functools.cache
def load_artifact(name: str) -> Artifact:
    """The committed artifact of contract ``name`` (one of ``CONTRACT_NAMES``)."""
    if name not in CONTRACT_NAMES:
        raise ArtifactError(f"unknown contract {name!r}; known: {', '.join(CONTRACT_NAMES)}")
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text("utf-8"))
        return Artifact(name, data["abi"], data["bytecode"], data["compiler"])
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} is missing; rebuild with `python -m meshops.chain.build`"
        ) from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid artifact: {exc}") from exc


def all_abis() -> list[list[dict[str, Any]]]:
    """Every contract's ABI: the revert decoder knows each custom error from any of them."""
    return [load_artifact(name).abi for name in CONTRACT_NAMES]
