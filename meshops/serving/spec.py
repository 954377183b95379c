"""What a model is (``ModelManifest``) and how a plugin asks for it (``EngineParams``).

A manifest is the registry's record of one model version: its backend (``onnx``, ``python``
or one a package registers), its task (which decides the pre- and post-processing), the
content hashes of its files and its batching defaults. A plugin names a model with
``AI_ENGINE`` (``name`` or ``name@version``) and may tune the server with
``AI_ENGINE_PARAMS``; instances that ask for the same model with the same parameters share
one server, as in the reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meshops._validation import WireModel

__all__ = ["TASKS", "EngineParams", "ModelManifest", "split_engine"]

TASKS = ("image-classification", "text-embedding", "tabular", "detection", "raw")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class ModelManifest(BaseModel):
    """One model version in a registry (stored as JSON, snake_case keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(default="1", pattern=NAME_PATTERN)
    backend: str = Field(default="onnx", min_length=1)
    task: str = Field(default="raw", description=f"one of {', '.join(TASKS)}")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="role -> sha256 of a stored file; ONNX models have a 'model' file.",
    )
    factory: str | None = Field(
        default=None, description="python backend: 'module:callable' building the model."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="task settings")
    max_batch: int = Field(default=8, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0, le=10_000)
    description: str = ""
    builtin: bool = False

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASKS)}")
        return value

    @field_validator("files")
    @classmethod
    def _hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for role, digest in value.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"files.{role}: not a lowercase sha256 hex digest")
        return value

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def digest(self) -> str:
        """A hash of the whole manifest: two nodes with the same digest hold the same model."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """What a heartbeat says about it."""
        return {
            "NAME": self.name,
            "VERSION": self.version,
            "BACKEND": self.backend,
            "TASK": self.task,
            "DIGEST": self.digest,
        }


class EngineParams(WireModel):
    """``AI_ENGINE_PARAMS`` of a plugin instance (UPPER_CASE on the wire)."""

    max_batch: int | None = Field(default=None, ge=1, le=1024, description="Largest batch.")
    max_wait_ms: float | None = Field(
        default=None, ge=0, le=10_000, description="Longest wait for a batch to fill, ms."
    )
    device: str = Field(default="auto", pattern="^(auto|cpu|cuda)$", description="auto|cpu|cuda")
    threads: int | None = Field(default=None, ge=1, le=256, description="Inference threads.")
    timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Per-request timeout.")
    max_rss_mb: int | None = Field(
        default=None,
        ge=32,
        le=1_048_576,
        description="Restart the server when its memory (RSS) grows past this: a leak guard.",
    )

    def server_part(self) -> dict[str, Any]:
        """The settings that make a different server (the timeout does not)."""
        return self.model_dump(exclude={"timeout_s"})


def split_engine(engine: str) -> tuple[str, str | None]:
    """``"name@version"`` as (name, version); a bare name means the newest version."""
    name, _, version = engine.partition("@")
    return name, version or None
