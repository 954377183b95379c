"""Look at and stop a local network from any process, through its state file."""

from __future__ import annotations

import logging
from pathlib import Path

from meshops.errors import ConfigError
from meshops.local.procs import terminate as terminate_procs
from meshops.local.state import STATE_FILE, NetworkInfo

__all__ = ["DEFAULT_HOME", "resolve_home", "status", "stop"]

log = logging.getLogger(__name__)

DEFAULT_HOME = Path("~/.meshops/up")


def resolve_home(home: Path | str) -> Path:
    return Path(home).expanduser().resolve()


def status(home: Path | str = DEFAULT_HOME) -> NetworkInfo | None:
    """The network started from ``home`` if any of its processes still runs, else None."""
    info = NetworkInfo.load(resolve_home(home))
    return info if info is not None and info.alive() else None


def stop(home: Path | str = DEFAULT_HOME, timeout: float = 15.0) -> NetworkInfo:
    """Stop the network started from ``home`` (from any process): SIGTERM the nodes, then the
    broker, SIGKILL what is left after ``timeout``; remove the state file. ConfigError if
    nothing was started from ``home``."""
    path = resolve_home(home)
    info = NetworkInfo.load(path)
    if info is None:
        raise ConfigError(f"no MeshOps network runs from {path} (no {STATE_FILE})")
    running = info.alive()
    if not running:
        log.info("the network in %s had already stopped; removing its state file", path)
    terminate_procs(running, timeout)
    (path / STATE_FILE).unlink(missing_ok=True)
    return info
