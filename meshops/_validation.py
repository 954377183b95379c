"""Typed wire configs: pydantic models whose fields travel as UPPER_CASE keys.

Shared by plugin, capture and node configs, so every config error reads the same way:
``PLUGINS.0.THRESHOLD: Input should be greater than or equal to 0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from meshops.errors import MeshOpsError

__all__ = ["WireModel", "describe_validation_error", "upper_alias", "validate_wire"]

M = TypeVar("M", bound=BaseModel)


def upper_alias(name: str) -> str:
    return name.upper()


class WireModel(BaseModel):
    """Snake_case attributes, UPPER_CASE wire keys; unknown keys kept; immutable."""

    model_config = ConfigDict(
        alias_generator=upper_alias, populate_by_name=True, extra="allow", frozen=True
    )

    def wire(self) -> dict[str, Any]:
        """The model as it travels: UPPER_CASE keys, extra keys as they came."""
        return self.model_dump(by_alias=True, mode="json")


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Every problem as ``PATH: message``, joined by ``; `` (paths use wire keys)."""
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(value)"
        parts.append(f"{path}: {err['msg']}")
    return "; ".join(parts)


def validate_wire(
    model: type[M], raw: Mapping[str, Any], *, what: str, error: type[MeshOpsError]
) -> M:
    """``model`` from wire keys, or ``error`` naming ``what`` and every bad field."""
    if not isinstance(raw, Mapping):
        raise error(f"{what}: expected an object, got {type(raw).__name__}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        raise error(f"{what}: {describe_validation_error(exc)}") from exc
