"""The client's identity: a secp256k1 key, by default ``~/.meshops/client.pem``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from meshops.errors import ConfigError
from meshops.protocol import NodeKey

__all__ = ["DEFAULT_KEY_PATH", "load_client_key"]

log = logging.getLogger(__name__)

DEFAULT_KEY_PATH = Path("~/.meshops/client.pem")


def load_client_key(key: NodeKey | str | os.PathLike[str] | None = None) -> NodeKey:
    """A key as given, read from a PEM file, or the default file (made, mode 0600, on first
    use). A path that is given must exist: a typo must not create a new identity."""
    if isinstance(key, NodeKey):
        return key
    path = Path(key if key is not None else DEFAULT_KEY_PATH).expanduser()
    if path.exists():
        return NodeKey.load(path)
    if key is not None:
        raise ConfigError(f"key file {path} does not exist")
    created = NodeKey.generate()
    created.save(path)
    log.info("created the client key %s: %s", path, created.address)
    return created
