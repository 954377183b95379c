"""One problem found in a pipeline file or config, and the error that carries them all.

Paths use the wire keys, with brackets for list positions
(``PLUGINS[0].INSTANCES[1].THRESHOLD``), so a message points at the exact place whether the
pipeline was written in YAML, JSON or built in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshops.errors import ConfigError

__all__ = ["PipelineFileError", "PipelineIssue", "join_path"]


def join_path(base: str, key: str | int) -> str:
    """``base`` extended by a mapping key (``A.B``) or a list position (``A[0]``)."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


@dataclass(frozen=True)
class PipelineIssue:
    """``path: message``; ``line`` (1-based) when the problem was traced to a file line."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def located(self, source: str | Path) -> str:
        """``FILE:LINE: PATH: message`` (the line when known), as compilers print errors."""
        where = f"{source}:{self.line}" if self.line else str(source)
        return f"{where}: {self}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line}


class PipelineFileError(ConfigError):
    """A pipeline file that cannot be used; ``issues`` holds every problem found."""

    def __init__(self, source: str | Path, issues: Sequence[PipelineIssue]) -> None:
        self.source = Path(source)
        self.issues = list(issues)
        count = len(self.issues)
        summary = "; ".join(str(issue) for issue in self.issues[:5])
        more = f" (and {count - 5} more)" if count > 5 else ""
        plural = "s" if count != 1 else ""
        super().__init__(f"{source}: {count} problem{plural}: {summary}{more}")
