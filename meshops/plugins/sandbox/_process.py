"""``WorkerProcess``: starting, talking to, describing and killing one worker.

The worker is a fresh interpreter in isolated mode (``-I``: no ``PYTHON*`` variables, no
user site, no script directory on the path) with a clean environment, only its three pipes
open, an empty directory as working directory and its own session (so the terminal's
Ctrl-C reaches the node, which then closes its sandboxes, and a kill reaches the whole
group). ``start`` returns once the worker has confined itself and said ``ready``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from meshops.plugins.sandbox._channel import ChannelError, ChannelOverflow, LineChannel
from meshops.plugins.sandbox._errors import SandboxError
from meshops.plugins.sandbox._types import SandboxLimits

__all__ = ["WorkerProcess"]

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from meshops.plugins.sandbox._worker import main; sys.exit(main())"
)
KILL_WAIT_S = 5.0


def _clean_environment() -> dict[str, str]:
    """Nothing of the node's environment (tokens, keys, proxies) reaches the worker."""
    env = {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    return env


def _fileno(pipe: IO[bytes] | None) -> int:
    if pipe is None:
        raise SandboxError("worker pipes were not created")
    return pipe.fileno()


class WorkerProcess:
    """One running worker. Not thread-safe: ``Sandbox`` serialises access."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str, limits: SandboxLimits) -> None:
        self.proc = proc
        self.name = name
        self.limits = limits
        self.isolation: tuple[str, ...] = ()
        self.channel = LineChannel(
            _fileno(proc.stdin), _fileno(proc.stdout), max_line_bytes=limits.max_reply_bytes
        )

    @classmethod
    def start(cls, name: str, limits: SandboxLimits, workdir: str) -> WorkerProcess:
        """A confined, ready worker; SandboxError (with its stderr) when it cannot start."""
        # argv[1] is the package root; "meshops-sandbox <name>" names the process in ps
        command = [
            *(sys.executable, "-I", "-B", "-c", _BOOTSTRAP, _PACKAGE_ROOT),
            *("meshops-sandbox", name, json.dumps(limits.worker_settings())),
        ]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=_clean_environment(),
            close_fds=True,
            start_new_session=True,
            bufsize=0,
        )
        worker = cls(proc, name, limits)
        try:
            hello = json.loads(worker.channel.recv(time.monotonic() + limits.start_timeout_s))
        except (ChannelError, ValueError) as exc:
            detail = worker._stderr_tail()
            worker.kill()
            raise SandboxError(f"worker did not start: {exc}{detail}") from exc
        if not isinstance(hello, dict) or hello.get("op") != "ready":
            worker.kill()
            error = hello.get("error") if isinstance(hello, dict) else hello
            raise SandboxError(f"worker did not start: {error}")
        worker.isolation = tuple(hello.get("isolation") or ())
        for note in hello.get("notes") or ():
            log.warning("sandbox %s: worker: %s", name, note)
        log.info("sandbox %s: worker %s ready (%s)", name, proc.pid, ", ".join(worker.isolation))
        return worker

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def exchange(self, request: bytes, request_id: int, deadline: float) -> dict[str, Any]:
        """Send one run request and return its reply; ChannelError on any failure."""
        self.channel.send(request, deadline)
        line = self.channel.recv(deadline)
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ChannelOverflow(f"the worker sent an invalid reply: {exc}") from exc
        if not isinstance(reply, dict) or reply.get("op") != "result":
            detail = reply.get("error") if isinstance(reply, dict) else None
            raise ChannelOverflow(f"the worker failed: {detail or 'unexpected reply'}")
        if reply.get("id") != request_id:
            raise ChannelOverflow("the worker answered another request")
        return reply

    def wait_exit(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("sandbox %s: worker %s closed its pipe but runs on", self.name, self.pid)

    def death_reason(self) -> str:
        """Why the worker is gone, from its exit status, in one line."""
        code = self.proc.poll()
        if code is None:
            return "the worker stopped answering"
        if code >= 0:
            return f"worker exited unexpectedly (exit code {code})"
        number = -code
        if number == signal.SIGXCPU:
            return f"CPU-time limit of {self.limits.cpu_seconds} s exceeded"
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return f"worker crashed (signal {number}, {name})"

    def _stderr_tail(self) -> str:
        pipe = self.proc.stderr
        if pipe is None:
            return ""
        os.set_blocking(pipe.fileno(), False)
        try:
            data = pipe.read(4096) or b""
        except OSError as exc:
            return f" (stderr unreadable: {exc})"
        text = " ".join(data.decode("utf-8", "replace").split()[-40:])
        return f" (stderr: {text})" if text else ""

    def signal_kill(self) -> None:
        """SIGKILL the worker's process group (safe from any thread; reaps nothing)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                log.debug("sandbox %s: worker %s already gone", self.name, self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the worker's process group, reap it, close the pipes; idempotent."""
        proc = self.proc
        self.signal_kill()
        try:
            proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            log.error("sandbox %s: worker %s survived SIGKILL", self.name, proc.pid)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
