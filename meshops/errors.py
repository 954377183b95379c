"""Every error MeshOps raises on purpose.

    MeshOpsError
    ├── ConfigError          bad settings, files or CLI arguments
    ├── ProtocolError        a message or key that breaks the wire protocol
    │   ├── KeyFormatError       a malformed key, PEM or address
    │   ├── CryptoError          encryption/decryption failed
    │   └── MessageRefused       an incoming message was refused (``reason`` says why)
    ├── TransportError       broker, socket or outbox trouble
    │   └── BrokerError          an embedded or external broker could not start or stop
    ├── PluginError          a plugin failed to load, validate or run
    └── ChainError           a contract call or transaction failed

Callers catch the branch they can handle; ``MessageRefused.reason`` is a
``RefusalReason`` so receivers can count refusals by kind without parsing text.
"""

from __future__ import annotations

import enum

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
    "ServingError",
    "TransportError",
]


class MeshOpsError(Exception):
    """Root of every error MeshOps raises on purpose."""


class ConfigError(MeshOpsError):
    """Bad settings, files or command-line arguments."""


class ProtocolError(MeshOpsError):
    """Something that breaks the wire protocol."""


class KeyFormatError(ProtocolError):
    """A malformed private key, PEM text or address."""


class CryptoError(ProtocolError):
    """Encryption or decryption failed (wrong key, tampered or malformed ciphertext)."""


class RefusalReason(enum.StrEnum):
    """Why an incoming message was refused; stable strings, usable as metric labels."""

    BAD_JSON = "bad_json"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    HASH_MISMATCH = "hash_mismatch"
    REPLAYED = "replayed"
    STALE = "stale"
    NOT_FOR_ME = "not_for_me"
    UNDECRYPTABLE = "undecryptable"
    UNAUTHORIZED = "unauthorized"
    BAD_COMMAND = "bad_command"
    RATE_LIMITED = "rate_limited"


class MessageRefused(ProtocolError):
    """An incoming message was refused; ``reason`` tells which check failed."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class TransportError(MeshOpsError):
    """Broker, socket or outbox trouble."""


class BrokerError(TransportError):
    """An embedded or external MQTT broker could not be started or stopped."""


class PluginError(MeshOpsError):
    """A plugin failed to load, validate or run."""


class ServingError(MeshOpsError):
    """A model could not be found, stored, loaded or served (the server died, timed out)."""


class ChainError(MeshOpsError):
    """A contract call or a transaction failed."""
