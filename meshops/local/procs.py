"""Child processes of the local network: start them, watch them, stop them, read their logs."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from meshops.errors import BrokerError
from meshops.local.state import LocalNode, is_alive, process_started

__all__ = ["HOST", "check_port_free", "free_port", "log_tail", "port_accepts", "spawn", "terminate"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int) -> None:
    """BrokerError (one line, naming the port) if ``127.0.0.1:port`` cannot be listened on."""
    with socket.socket() as sock:
        # as asyncio's server does: a port left in TIME_WAIT is free, one listened on is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise BrokerError(
                f"port {port} on {HOST} is busy ({exc.strerror or exc}); "
                "stop what uses it or pick another with --port"
            ) from None


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(
    name: str,
    args: list[str],
    log_dir: Path,
    *,
    role: str,
    home: Path | None = None,
    module: str = "meshops.cli",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], LocalNode]:
    """Start ``python -m MODULE ARGS`` in its own session, output to ``LOG_DIR/NAME.log``;
    ``env`` is added to this process's environment.

    Its own session (process group): Ctrl-C in the terminal does not reach it, it outlives
    its parent (``--detach``), and :func:`terminate` stops it with everything it started.
    """
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home or log_dir,
            env=env,
            start_new_session=True,
        )
    started = process_started(proc.pid) or time.time()
    log.info("started %s (pid %d): %s", name, proc.pid, " ".join(args))
    return proc, LocalNode(name, role, proc.pid, started, str(home or ""))


def log_tail(path: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of a child's log, indented, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "    (no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in tail) or "    (empty log)"


def _signal_group(proc: LocalNode, sig: signal.Signals) -> None:
    if not is_alive(proc):
        return
    try:
        os.killpg(proc.pid, sig)  # pid == pgid: each child leads its own session
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _wait_gone(procs: Iterable[LocalNode], timeout: float) -> list[LocalNode]:
    """Wait (reaping our own children) until ``procs`` end; those still running."""
    handles = []
    for proc in procs:
        if is_alive(proc):
            with contextlib.suppress(psutil.Error):
                handles.append((proc, psutil.Process(proc.pid)))
    if not handles:
        return []
    _gone, alive = psutil.wait_procs([h for _, h in handles], timeout=max(timeout, 0.0))
    alive_pids = {p.pid for p in alive}
    return [proc for proc, handle in handles if handle.pid in alive_pids and is_alive(proc)]


def terminate(procs: list[LocalNode], timeout: float = 15.0) -> list[LocalNode]:
    """SIGTERM each group in order (nodes before the broker and the chain, so they leave
    cleanly), wait, then SIGKILL what is left. Returns the processes that had to be killed."""
    deadline = time.monotonic() + timeout
    services = ("broker", "chain")
    nodes = [p for p in procs if p.role not in services]
    brokers = [p for p in procs if p.role in services]
    killed: list[LocalNode] = []
    for group, share in ((nodes, 0.7), (brokers, 1.0)):
        for proc in group:
            _signal_group(proc, signal.SIGTERM)
        budget = (deadline - time.monotonic()) * share
        for proc in _wait_gone(group, budget):
            log.warning("%s (pid %d) did not stop in time: killing it", proc.alias, proc.pid)
            _signal_group(proc, signal.SIGKILL)
            killed.append(proc)
        _wait_gone(killed, 2.0)
    return killed
