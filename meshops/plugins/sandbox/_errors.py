"""The sandbox's errors; both are ``PluginError``s, so the node reports them as plugin errors."""

from __future__ import annotations

from meshops.errors import PluginError

__all__ = ["CodePolicyError", "SandboxError"]


class SandboxError(PluginError):
    """The sandbox itself failed: a worker could not start, or it was used after close()."""


class CodePolicyError(SandboxError):
    """Custom code was refused before it ran: it could not be decoded, does not parse, or
    names something the policy forbids. ``line`` is the offending source line when known."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
