"""The sandbox's settings and what one run gives back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from meshops.plugins.sandbox._codec import MAX_SOURCE_BYTES
from meshops.plugins.sandbox._errors import SandboxError

__all__ = ["DEFAULT_LIMITS", "SandboxLimits", "SandboxResult"]


@dataclass(frozen=True)
class SandboxLimits:
    """What one worker may use. Memory is counted on top of the worker's own footprint
    (Python + numpy, about 100 MiB of address space); CPU time and wall clock per run."""

    memory_mib: int = 512
    wall_s: float = 5.0
    cpu_s: int | None = None
    """CPU seconds per run; None: the wall-clock limit, rounded up."""
    start_timeout_s: float = 20.0
    max_source_bytes: int = MAX_SOURCE_BYTES
    max_request_bytes: int = 8 * 2**20
    max_reply_bytes: int = 4 * 2**20
    max_logs: int = 200
    max_log_chars: int = 2000
    max_payloads: int = 50

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise SandboxError(f"SandboxLimits.{name} must be a positive number, got {value!r}")

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else max(1, math.ceil(self.wall_s))

    def worker_settings(self) -> dict[str, Any]:
        """What the worker needs to know (passed on its command line)."""
        return {
            "memory_mib": self.memory_mib,
            "cpu_s": self.cpu_seconds,
            "max_source_bytes": self.max_source_bytes,
            "max_request_bytes": self.max_request_bytes,
            "max_reply_bytes": self.max_reply_bytes,
            "max_logs": self.max_logs,
            "max_log_chars": self.max_log_chars,
            "max_payloads": self.max_payloads,
        }


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True)
class SandboxResult:
    """One run. ``error`` is None on success, else one line saying why (a policy refusal, the
    code's own exception with its line, a limit hit, a worker crash). ``worker_restarted``:
    the worker that held ``plugin.obj_cache`` is gone and a fresh one (empty cache) took
    over during this call; ``warnings`` says so in words."""

    result: Any = None
    error: str | None = None
    logs: list[str] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    worker_restarted: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None
