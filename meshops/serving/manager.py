"""The node side of serving: one ``ModelServer`` process per (model, parameters), shared.

``ServingManager.acquire(owner, engine, params)`` gives a plugin instance an ``EngineClient``
and starts the server when it is the first to ask; ``release(owner)`` stops the server when
the last user goes. A server that dies is reported (``on_event``), the requests it held fail
with a ``ServingError``, and it is started again (with a back-off, up to
``MAX_RESTARTS`` times in ``RESTART_WINDOW_S``), so the node and its pipelines live on.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil

from meshops.errors import ServingError
from meshops.serving.registry import ModelRegistry
from meshops.serving.shm import Arena
from meshops.serving.spec import EngineParams, ModelManifest

__all__ = ["EngineClient", "Inference", "ModelServer", "Request", "ServingManager"]

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
START_TIMEOUT_S = 120.0
STUCK_AFTER = 2
"""Consecutive timed-out requests after which a live but silent server is restarted."""
WATCH_S = 1.0
"""How often a server with MAX_RSS_MB has its memory checked."""

EventSink = Callable[[str, Mapping[str, Any]], None]
"""(kind, details): kind is started, crashed, failed or stopped."""


@dataclass(frozen=True)
class Inference:
    """What one ``infer`` call returns: a result per input and the batches that served them."""

    results: list[Any]
    batches: list[int]


class _Pending:
    """The answer slot of one request, filled by the reader thread."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Inference | None = None
        self.error: str | None = None


@dataclass(frozen=True)
class Request:
    """A request sent to a model server; ``ModelServer.wait`` (or ``EngineClient.result``)."""

    id: int
    pending: _Pending = field(repr=False)


class ModelServer:
    """One model server process and the thread that reads its answers."""

    def __init__(
        self,
        manifest: ModelManifest,
        files: Mapping[str, str],
        params: EngineParams,
        options: Mapping[str, Any],
        *,
        on_event: EventSink | None = None,
    ) -> None:
        self.manifest = manifest
        self.files = dict(files)
        self.params = params
        self.options = dict(options)
        self.name = manifest.ref
        self._on_event = on_event or (lambda kind, details: None)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._ready = threading.Event()
        self._stopping = False
        self._crashes: list[float] = []
        self.state = "starting"
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self.requests = 0
        self.items = 0
        self.batches = 0
        self._process: Any = None
        self._stopped = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._kill_reason: str | None = None
        self._timeouts = 0
        self._conn: Any = None
        self._reader: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the process (returns at once; ``infer`` waits until the model is loaded)."""
        self._spawn()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"meshops-serving-{self.name}", daemon=True
        )
        self._reader.start()
        if self.params.max_rss_mb is not None:
            self._watchdog = threading.Thread(
                target=self._watch_memory, name=f"meshops-serving-rss-{self.name}", daemon=True
            )
            self._watchdog.start()

    def _watch_memory(self) -> None:
        """Kill (and so restart) the server when its RSS passes MAX_RSS_MB: a leaking model
        is recycled before it can starve the node."""
        assert self.params.max_rss_mb is not None
        limit = self.params.max_rss_mb * 1024 * 1024
        while not self._stopped.wait(WATCH_S):
            with self._lock:
                process = self._process
            try:
                rss = psutil.Process(process.pid).memory_info().rss
            except (psutil.Error, AttributeError):
                continue  # between a crash and its restart
            if rss > limit and process.poll() is None:
                self._kill_reason = (
                    f"its memory ({rss / 2**20:.0f} MiB) passed MAX_RSS_MB {self.params.max_rss_mb}"
                )
                log.warning("model server %s: %s; restarting it", self.name, self._kill_reason)
                process.kill()

    def _spawn(self) -> None:
        parent, child = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "meshops.serving.server", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        conn = Connection(parent.detach())
        conn.send(
            (
                "load",
                self.manifest.model_dump_json(),
                self.files,
                self.params.model_dump_json(),
                self.options,
            )
        )
        with self._lock:
            self._process, self._conn = process, conn
            self._timeouts = 0
            self._ready.clear()
            self.state = "starting"

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        with self._lock:
            self._stopping = True
            process, conn = self._process, self._conn
        if conn is not None:
            try:
                with self._send_lock:
                    conn.send(("stop",))
            except (OSError, ValueError):
                pass  # already gone
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        for thread in (self._reader, self._watchdog):
            if thread is not None:
                thread.join(timeout)
        self._fail_pending("the model server was stopped")
        with self._lock:
            self.state = "stopped"
        self._on_event("stopped", self.status())

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def kill(self) -> None:
        """Kill the process (as a crash would); it is restarted like after any crash."""
        if self._process is not None:
            self._process.kill()

    # ---- requests ------------------------------------------------------------------------

    def infer(self, inputs: list[Any], timeout: float = 30.0) -> Inference:
        """Send a request and wait for its answer (ServingError on failure or timeout)."""
        deadline = time.monotonic() + timeout
        return self.wait(self.submit(inputs, timeout), max(deadline - time.monotonic(), 0))

    def submit(self, inputs: list[Any], timeout: float = 30.0) -> Request:
        """Send a request without waiting; ``wait`` for its answer later."""
        if not self._ready.wait(max(min(timeout, START_TIMEOUT_S), 0)):
            with self._lock:
                state, error = self.state, self.error
            if state == "failed":
                raise ServingError(f"model server {self.name} failed: {error}")
            raise ServingError(f"model server {self.name} not ready after {timeout:.0f} s")
        pending = _Pending()
        with self._lock:
            if self.state == "failed":
                raise ServingError(f"model server {self.name} failed: {self.error}")
            if self.state != "ready":
                raise ServingError(f"model server {self.name} is {self.state}: {self.error}")
            request_id = next(self._ids)
            self._pending[request_id] = pending
            conn = self._conn
            self.requests += 1
            self.items += len(inputs)
        try:
            with self._send_lock:
                conn.send(("infer", request_id, inputs))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            raise ServingError(f"model server {self.name}: cannot send the request: {exc}") from exc
        return Request(request_id, pending)

    def wait(self, request: Request, timeout: float) -> Inference:
        pending = request.pending
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(request.id, None)
                self._timeouts += 1
                stuck = self._timeouts >= STUCK_AFTER and self.state == "ready"
                process = self._process
            if stuck and process is not None and process.poll() is None:
                # Alive but silent (a stuck native call, a deadlock): recycle it like a crash.
                self._kill_reason = f"it stopped answering ({STUCK_AFTER} requests timed out)"
                log.warning("model server %s: %s; restarting it", self.name, self._kill_reason)
                process.kill()
            raise ServingError(f"model server {self.name}: no answer within {timeout:g} s")
        with self._lock:
            self._timeouts = 0
        if pending.error is not None:
            raise ServingError(f"model server {self.name}: {pending.error}")
        assert pending.value is not None
        return pending.value

    # ---- the reader thread ---------------------------------------------------------------

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                conn, process = self._conn, self._process
            try:
                while True:
                    self._handle(conn.recv())
            except (EOFError, OSError):
                pass
            except Exception:  # never let the reader die silently
                log.exception("model server %s: bad answer", self.name)
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:  # it closed the socket but lives on: end it
                process.kill()
                process.wait(5.0)
            conn.close()
            with self._lock:
                stopping = self._stopping
            if stopping:
                return
            if not self._after_crash(process.returncode):
                return

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            with self._lock:
                self.info = dict(message[1])
                self.state = "ready"
                self.error = None
            self._ready.set()
            self._on_event("started", self.status())
        elif kind == "load_error":
            with self._lock:
                self.state = "failed"
                self.error = message[1]
                self._stopping = True  # a model that cannot load will not load on a retry
            self._ready.set()
            self._on_event("failed", self.status())
        elif kind in ("done", "error"):
            with self._lock:
                pending = self._pending.pop(message[1], None)
                if kind == "done":
                    self.batches = max([self.batches, *message[3]])
            if pending is None:
                return  # it timed out; the answer is late
            if kind == "done":
                pending.value = Inference(message[2], message[3])
            else:
                pending.error = message[2]
            pending.done.set()

    def _after_crash(self, exitcode: int | None) -> bool:
        """Report, fail what was pending, restart (or give up). False: stop reading."""
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < RESTART_WINDOW_S] + [now]
        message = f"the model server process died (exit code {exitcode})"
        reason, self._kill_reason = self._kill_reason, None
        if reason:
            message = f"the model server was restarted: {reason}"
        self._fail_pending(message)
        with self._lock:
            self.error = message
            give_up = len(self._crashes) > MAX_RESTARTS
            self.state = "failed" if give_up else "restarting"
        self._on_event("crashed", {**self.status(), "EXIT_CODE": exitcode})
        if give_up:
            with self._lock:
                self.error = f"{message}; {MAX_RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s"
            self._ready.set()
            self._on_event("failed", self.status())
            return False
        time.sleep(min(0.2 * 2 ** (len(self._crashes) - 1), 5.0))
        with self._lock:
            if self._stopping:
                return False
        self.restarts += 1
        self._spawn()
        return True

    def _fail_pending(self, message: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for item in pending.values():
            item.error = message
            item.done.set()

    def status(self) -> dict[str, Any]:
        return {
            "ENGINE": self.name,
            "STATE": self.state,
            "PID": self.pid,
            "RESTARTS": self.restarts,
            "REQUESTS": self.requests,
            "ITEMS": self.items,
            "BATCHES": self.batches,
            "ERROR": self.error,
            "PROVIDERS": self.info.get("providers"),
            "MAX_BATCH": self.info.get("max_batch"),
        }


class EngineClient:
    """What a plugin instance holds: ``infer(inputs)``, or ``submit`` then ``result`` to keep
    the server busy while the plugin works on the previous answer (two requests at most in
    flight, each with its own shared-memory arena)."""

    def __init__(self, manager: ServingManager, owner: str, server: ModelServer, timeout: float):
        self._manager = manager
        self.owner = owner
        self.server = server
        self.timeout = timeout
        self._arenas = [Arena(), Arena()]
        self._next_arena = 0
        self._in_flight: dict[int, int] = {}  # request id -> arena index
        self._lock = threading.Lock()

    @property
    def engine(self) -> str:
        return self.server.name

    def infer(self, inputs: list[Any]) -> Inference:
        return self.result(self.submit(inputs))

    def submit(self, inputs: list[Any]) -> Request:
        with self._lock:
            index = self._next_arena
            if index in self._in_flight.values():
                raise ServingError(f"{self.owner}: two requests are already in flight")
            self._next_arena = 1 - index
            packed = self._arenas[index].pack(list(inputs))
            request = self.server.submit(packed, self.timeout)
            self._in_flight[request.id] = index
            return request

    def result(self, request: Request) -> Inference:
        try:
            return self.server.wait(request, self.timeout)
        finally:
            with self._lock:
                self._in_flight.pop(request.id, None)

    def close(self) -> None:
        self._manager.release(self.owner)

    def _free(self) -> None:
        with self._lock:
            for arena in self._arenas:
                arena.close()


class ServingManager:
    """Every model server of one node, shared by all of its pipelines."""

    def __init__(self, registry: ModelRegistry, *, on_event: EventSink | None = None) -> None:
        self.registry = registry
        self._on_event = on_event or (lambda kind, details: None)
        self._lock = threading.Lock()
        self._servers: dict[str, ModelServer] = {}
        self._owners: dict[str, tuple[str, EngineClient]] = {}

    def resolve(
        self, engine: str, raw_params: Mapping[str, Any] | None = None
    ) -> tuple[ModelManifest, EngineParams, dict[str, Any]]:
        """Check an AI_ENGINE and its params before anything starts (ServingError if bad)."""
        manifest = self.registry.get(engine)
        params = EngineParams.model_validate(dict(raw_params or {}))
        extra = {k.lower(): v for k, v in (params.model_extra or {}).items()}
        return manifest, params, {**manifest.options, **extra}

    def acquire(
        self, owner: str, engine: str, raw_params: Mapping[str, Any] | None = None
    ) -> EngineClient:
        manifest, params, options = self.resolve(engine, raw_params)
        key = json.dumps(
            [manifest.ref, manifest.digest, params.server_part(), options],
            sort_keys=True,
            default=str,
        )
        with self._lock:
            if owner in self._owners:
                raise ServingError(f"{owner} already holds an engine")
            server = self._servers.get(key)
            if server is None:
                files = {role: str(p) for role, p in self.registry.files(manifest).items()}
                server = ModelServer(manifest, files, params, options, on_event=self._on_event)
                server.start()
                self._servers[key] = server
            client = EngineClient(self, owner, server, params.timeout_s)
            self._owners[owner] = (key, client)
            return client

    def release(self, owner: str) -> None:
        with self._lock:
            entry = self._owners.pop(owner, None)
            if entry is None:
                return
            key, client = entry
            last = all(k != key for k, _ in self._owners.values())
            server = self._servers.pop(key) if last else None
        client._free()
        if server is not None:
            server.stop()

    def servers(self) -> list[dict[str, Any]]:
        with self._lock:
            servers = list(self._servers.items())
            owners = [k for k, _ in self._owners.values()]
        return [{**s.status(), "USERS": owners.count(key)} for key, s in servers]

    def server_for(self, owner: str) -> ModelServer | None:
        with self._lock:
            entry = self._owners.get(owner)
        return entry[1].server if entry else None

    def stop_all(self) -> None:
        with self._lock:
            owners = list(self._owners)
        for owner in owners:
            self.release(owner)
