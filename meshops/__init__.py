"""MeshOps: a decentralized MLOps execution engine speaking the Naeural/Ratio1 edge protocol.

The public API of each part lives in its package (``meshops.protocol``,
``meshops.transport``); this module exposes the version and the error hierarchy.
"""

from meshops._version import __version__
from meshops.errors import (
    BrokerError,
    ChainError,
    ConfigError,
    CryptoError,
    KeyFormatError,
    MeshOpsError,
    MessageRefused,
    PluginError,
    ProtocolError,
    RefusalReason,
    TransportError,
)

__all__ = [
    "BrokerError",
    "ChainError",
    "ConfigError",
    "CryptoError",
    "KeyFormatError",
    "MeshOpsError",
    "MessageRefused",
    "PluginError",
    "ProtocolError",
    "RefusalReason",
    "TransportError",
    "__version__",
]
