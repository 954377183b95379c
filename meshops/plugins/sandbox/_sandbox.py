"""``Sandbox``: one worker process that runs custom code for one plugin instance.

The node side of the sandbox. It checks code with the policy before bothering the worker,
sends one JSON request per run, and waits at most the wall-clock limit for the answer; a
worker that overruns is killed and replaced at once, so the next run starts on a fresh one.
A worker that died (crash, CPU limit, killed) is described by its exit signal, and one
found dead between runs is replaced before the run. Runs are serialised by a lock;
``close()`` may be called from any thread and kills the worker even in the middle of a run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from typing import Any

from meshops.plugins.sandbox._channel import ChannelClosed, ChannelError, ChannelTimeout
from meshops.plugins.sandbox._errors import CodePolicyError, SandboxError
from meshops.plugins.sandbox._jsonable import dumps_capped, to_jsonable
from meshops.plugins.sandbox._policy import prepare
from meshops.plugins.sandbox._process import KILL_WAIT_S, WorkerProcess
from meshops.plugins.sandbox._types import DEFAULT_LIMITS, SandboxLimits, SandboxResult

__all__ = ["Sandbox"]

log = logging.getLogger(__name__)

_REPLY_GRACE_S = 0.5
_MAX_ERROR_CHARS = 1000
_CACHE_LOST = "the worker was replaced: plugin.obj_cache starts empty"


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _result_from_reply(
    reply: dict[str, Any], *, restarted: bool, warnings: list[str]
) -> SandboxResult:
    """The reply as a SandboxResult, trusting none of its types: a worker whose code
    escaped the Python-level sandbox may send anything that is valid JSON."""
    error, duration = reply.get("error"), reply.get("duration_s")
    payloads = reply.get("payloads")
    return SandboxResult(
        result=reply.get("result"),
        error=None if error is None else str(error)[:_MAX_ERROR_CHARS],
        logs=_strings(reply.get("logs")),
        payloads=[p for p in payloads if isinstance(p, dict)] if isinstance(payloads, list) else [],
        duration_s=float(duration) if isinstance(duration, int | float) else 0.0,
        worker_restarted=restarted,
        warnings=warnings + _strings(reply.get("warnings")),
    )


class Sandbox:
    """One worker process for one plugin instance; see the package docstring."""

    def __init__(self, limits: SandboxLimits = DEFAULT_LIMITS, *, name: str) -> None:
        self.limits = limits
        self.name = name
        self.runs = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._worker: WorkerProcess | None = None
        self._workdir: str | None = None
        self._closed = False
        self._checked_source: str | None = None

    @property
    def pid(self) -> int | None:
        """The current worker's process id (None when none runs)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    @property
    def isolation(self) -> tuple[str, ...]:
        """The containment layers the current worker applied (e.g. chroot, landlock-v7)."""
        worker = self._worker
        return worker.isolation if worker is not None else ()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        source: str,
        *,
        config: dict[str, Any],
        inputs: list[Any],
        context: dict[str, Any],
        fresh_cache: bool = False,
    ) -> SandboxResult:
        """Run ``source`` once. Every problem of the code or the worker comes back in
        ``SandboxResult.error``; SandboxError only for a closed or hopelessly busy sandbox.
        ``fresh_cache`` empties ``plugin.obj_cache`` first (used when the code changes)."""
        wait = self.limits.wall_s * 2 + self.limits.start_timeout_s + KILL_WAIT_S
        if not self._lock.acquire(timeout=wait):
            raise SandboxError(f"sandbox {self.name}: still busy after {wait:.0f} s")
        try:
            if self._closed:
                raise SandboxError(f"sandbox {self.name} is closed")
            return self._run_locked(source, config, inputs, context, fresh_cache)
        finally:
            self._lock.release()

    def _run_locked(
        self,
        source: str,
        config: dict[str, Any],
        inputs: list[Any],
        context: dict[str, Any],
        fresh_cache: bool,
    ) -> SandboxResult:
        if source != self._checked_source:
            try:
                prepare(source, max_bytes=self.limits.max_source_bytes)
            except CodePolicyError as exc:
                return SandboxResult(error=str(exc))
            self._checked_source = source
        worker, warnings = self._worker, []
        restarted = worker is not None and not worker.alive
        if restarted:
            warnings.append(f"{worker.death_reason()}; {_CACHE_LOST}")
        if worker is None or restarted:
            try:
                worker = self._replace_worker()
            except SandboxError as exc:
                return SandboxResult(error=str(exc), worker_restarted=restarted)
        self.runs += 1
        request = {
            "op": "run",
            "id": self.runs,
            "source": source,
            "config": config,
            "inputs": inputs,
            "context": context,
            "fresh_cache": fresh_cache,
        }
        try:
            raw = dumps_capped(to_jsonable(request), self.limits.max_request_bytes)
        except ValueError as exc:
            return SandboxResult(error=f"run request is too large: {exc}")
        started = time.monotonic()
        try:
            reply = worker.exchange(raw, self.runs, started + self.limits.wall_s + _REPLY_GRACE_S)
        except ChannelError as exc:
            return self._after_failure(worker, exc, time.monotonic() - started, warnings)
        return _result_from_reply(reply, restarted=restarted, warnings=warnings)

    def _after_failure(
        self, worker: WorkerProcess, exc: ChannelError, duration: float, warnings: list[str]
    ) -> SandboxResult:
        """Describe what went wrong, kill the worker and start its replacement."""
        if isinstance(exc, ChannelTimeout):
            error = f"wall-clock limit of {self.limits.wall_s:g} s exceeded"
        elif isinstance(exc, ChannelClosed):
            worker.wait_exit(KILL_WAIT_S)
            error = worker.death_reason()
        else:
            error = str(exc)
        if self._closed:
            self._kill_worker()
            return SandboxResult(error=f"{error}; the sandbox was closed", duration_s=duration)
        try:
            self._replace_worker()
            error += "; worker restarted"
        except SandboxError as start_error:
            error += f"; worker could not be restarted: {start_error}"
        log.warning("sandbox %s: %s", self.name, error)
        return SandboxResult(
            error=error,
            duration_s=duration,
            worker_restarted=True,
            warnings=[*warnings, _CACHE_LOST],
        )

    def _replace_worker(self) -> WorkerProcess:
        """Kill the current worker, if any, and start a fresh one."""
        had_worker = self._kill_worker()
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="meshops-sandbox-")
        worker = WorkerProcess.start(self.name, self.limits, self._workdir)
        with self._worker_lock:
            if self._closed:
                worker.kill()
                raise SandboxError(f"sandbox {self.name} is closed")
            self._worker = worker
        if had_worker:
            self.restarts += 1
        return worker

    def _kill_worker(self) -> bool:
        with self._worker_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.kill()
            return worker is not None

    def close(self, timeout: float = 5.0) -> None:
        """Kill the worker (even mid-run) and remove its directory; idempotent."""
        self._closed = True
        with self._worker_lock:
            if self._worker is not None:
                # only a signal here: a run in progress owns the pipes until it sees EOF
                self._worker.signal_kill()
        if not self._lock.acquire(timeout=timeout):
            log.warning("sandbox %s: a run outlived close() by %.1f s", self.name, timeout)
            return
        try:
            self._kill_worker()
            if self._workdir is not None:
                try:
                    os.rmdir(self._workdir)
                except OSError as exc:
                    log.warning("sandbox %s: cannot remove its directory: %s", self.name, exc)
                self._workdir = None
        finally:
            self._lock.release()
