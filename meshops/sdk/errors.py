"""Errors the SDK raises; all are ``MeshOpsError``s, under the ``SdkError`` branch.

    SdkError
    ├── SessionClosedError     the session was closed while (or before) waiting
    ├── NodeError              a node is unknown, offline, refuses us, or does not answer
    │   ├── NodeNotFoundError      no heartbeat or network map names it (or not lately)
    │   ├── NodeNotAllowedError    it is secured and its allow-list lacks our address
    │   └── NodeTimeoutError       it did not answer a request in time (also a TimeoutError)
    ├── PipelineNotFoundError  attach() to a pipeline the node does not run
    ├── DeployError            a command was refused (negative code) or not confirmed in time
    └── RemoteExecutionError   custom code ran on the node and raised

Each carries the node (alias and address) and, where it applies, the pipeline, the instance
and the node's own reason, so a message alone tells a user what failed where.
"""

from __future__ import annotations

from meshops.errors import MeshOpsError

__all__ = [
    "AmbiguousNodeError",
    "DeployError",
    "NodeError",
    "NodeNotAllowedError",
    "NodeNotFoundError",
    "NodeTimeoutError",
    "PipelineNotFoundError",
    "RemoteExecutionError",
    "SdkError",
    "SessionClosedError",
]


class SdkError(MeshOpsError):
    """Root of the SDK's errors."""


class SessionClosedError(SdkError):
    """The session is closed; nothing more can be sent or awaited."""


class NodeError(SdkError):
    """Something about one node; ``node`` is the alias or address the caller gave."""

    def __init__(self, message: str, *, node: str) -> None:
        super().__init__(message)
        self.node = node


class NodeNotFoundError(NodeError):
    """No heartbeat or network map names the node, or it was last seen too long ago."""


class AmbiguousNodeError(NodeError):
    """Several online nodes share the alias asked for: name one by its address instead."""

    def __init__(self, message: str, *, node: str, addresses: tuple[str, ...]) -> None:
        super().__init__(message, node=node)
        self.addresses = addresses


class NodeNotAllowedError(NodeError):
    """The node is secured and does not list this session's address."""

    def __init__(self, message: str, *, node: str, address: str) -> None:
        super().__init__(message, node=node)
        self.address = address


class NodeTimeoutError(NodeError, TimeoutError):
    """The node did not answer a request (configs, a custom-code result) in time."""


class PipelineNotFoundError(SdkError):
    """The node runs no pipeline of that name; ``available`` lists those it runs."""

    def __init__(self, message: str, *, node: str, pipeline: str, available: list[str]) -> None:
        super().__init__(message)
        self.node = node
        self.pipeline = pipeline
        self.available = available


class DeployError(SdkError):
    """A command was refused by the node or not confirmed within its timeout.

    ``code`` is the node's negative notification code (None for a timeout), ``reason`` its
    text (or what was still missing), ``instances`` the ``"SIGNATURE/INSTANCE_ID"`` it named.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str,
        pipeline: str,
        reason: str,
        code: int | None = None,
        instances: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.node = node
        self.pipeline = pipeline
        self.reason = reason
        self.code = code
        self.instances = instances

    @property
    def instance(self) -> str | None:
        """The instance, when the failure names exactly one."""
        return self.instances[0] if len(self.instances) == 1 else None

    @property
    def timed_out(self) -> bool:
        return self.code is None


class RemoteExecutionError(SdkError):
    """Custom code raised on the node; ``remote_error`` is the node's text for it."""

    def __init__(
        self, message: str, *, node: str, pipeline: str, instance: str, remote_error: str
    ) -> None:
        super().__init__(message)
        self.node = node
        self.pipeline = pipeline
        self.instance = instance
        self.remote_error = remote_error
