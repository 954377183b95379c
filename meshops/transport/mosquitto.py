"""``MosquittoBroker``: a private Mosquitto process on a loopback port, for tests and benchmarks.

Why a wrapper: tests must kill the broker (SIGKILL) and bring it back on the *same* port
to prove nothing is lost, and benchmarks need queue limits set deliberately; Mosquitto's
defaults (``max_queued_messages 1000``, ``max_inflight_messages 20``) drop messages for a
lagging subscriber and throttle throughput. The config written here:
no persistence (a restart forgets everything, the harshest case), no queue limit,
``max_inflight_messages`` chosen by the caller, ``set_tcp_nodelay true``.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Self

from meshops.errors import BrokerError
from meshops.transport.base import StartStop

__all__ = ["MosquittoBroker", "find_mosquitto"]

log = logging.getLogger(__name__)

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")


def find_mosquitto() -> str | None:
    """Path of the ``mosquitto`` binary, or ``None`` (it often lives in an sbin not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for folder in _SEARCH_DIRS:
        candidate = Path(folder) / "mosquitto"
        if candidate.is_file():
            return str(candidate)
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    """Raise ``BrokerError`` if something already listens on ``host:port``.

    Checked before starting, because otherwise the readiness probe would talk to that
    other listener. SO_REUSEADDR, as Mosquitto uses, so TIME_WAIT leftovers of a killed
    broker do not count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise BrokerError(f"cannot start mosquitto on {host}:{port}: {exc}") from exc


class MosquittoBroker(StartStop):
    """A Mosquitto child process listening on ``127.0.0.1:port`` (``port=0``: a free one)."""

    host = "127.0.0.1"

    def __init__(
        self,
        port: int = 0,
        workdir: str | Path | None = None,
        *,
        max_inflight_messages: int = 1000,
        binary: str | None = None,
    ) -> None:
        binary = binary or find_mosquitto()
        if binary is None:
            raise BrokerError(
                "mosquitto not found on PATH or in /usr/sbin; install it "
                "(apt-get install mosquitto, brew install mosquitto) or use EmbeddedBroker"
            )
        self.binary = binary
        self.port = port or _free_port(self.host)
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir)
            if workdir is not None
            else Path(tempfile.mkdtemp(prefix="meshops-mosquitto-"))
        )
        self.max_inflight_messages = max_inflight_messages
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    "set_tcp_nodelay true",
                    "persistence false",
                    "max_queued_messages 0",
                    "max_queued_bytes 0",
                    f"max_inflight_messages {self.max_inflight_messages}",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> Self:
        """Start Mosquitto and wait until its port accepts connections."""
        if self.running:
            raise BrokerError(f"mosquitto already running on {self.url} (pid {self.pid})")
        _check_port_free(self.host, self.port)
        self._write_config()
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()
                raise BrokerError(
                    f"mosquitto exited with code {code} before listening on {self.url}: "
                    f"{self._log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    log.info("mosquitto (pid %s) listening on %s", self.pid, self.url)
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on {self.url} within {timeout} s")

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL the broker: everything it held in memory is lost."""
        self._end(signal.SIGKILL, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL if it takes over ``timeout``; remove a temp dir."""
        try:
            self._end(signal.SIGTERM, timeout)
        except BrokerError:
            self.kill(timeout)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 10.0) -> Self:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        if self.running:
            self._end(signal.SIGTERM, timeout)
        return self.start(timeout)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                raise BrokerError(
                    f"mosquitto (pid {proc.pid}) did not exit on {sig.name} in {timeout} s"
                ) from exc
        log.info("mosquitto (pid %s) on %s ended by %s", proc.pid, self.url, sig.name)
        self._reap()

    def _reap(self) -> None:
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return " | ".join(text[-lines:]) or "(empty log)"

    def __repr__(self) -> str:
        return f"MosquittoBroker(port={self.port}, pid={self.pid})"
