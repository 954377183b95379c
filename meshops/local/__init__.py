"""A whole local MeshOps network as separate processes (``meshops up`` / ``meshops down``)."""

from meshops.local.network import DEFAULT_HOME, DEMO_PIPELINE, LocalNetwork, status, stop
from meshops.local.state import LocalNode, NetworkInfo

__all__ = [
    "DEFAULT_HOME",
    "DEMO_PIPELINE",
    "LocalNetwork",
    "LocalNode",
    "NetworkInfo",
    "status",
    "stop",
]
