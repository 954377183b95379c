"""One plugin instance on its own named thread.

Everything the plugin's code does runs on that thread: ``on_init``, ``process``, instance
commands and config changes arrive as events, so plugin authors never need locks. A hook
that raises is reported (``on_error``) and the instance keeps running; ``stop`` calls
``on_close`` and joins the thread. An instance with a model (``AI_ENGINE``) sends each batch
of captured items to its model server first and hands ``process`` the inferences with them.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshops.capture.base import CaptureItem
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

if TYPE_CHECKING:
    from meshops.serving import EngineClient
    from meshops.serving.manager import Request

__all__ = ["CommandOutcome", "InstanceRunner"]

log = logging.getLogger(__name__)

MAX_PENDING_ITEMS = 1000


@dataclass(frozen=True)
class _Submitted:
    items: tuple[CaptureItem, ...]
    wanted: list[Any]
    request: Request | None
    failed: bool = False


@dataclass(frozen=True)
class CommandOutcome:
    ok: bool
    info: str
    command: Any


class InstanceRunner:
    """Drives one ``BusinessPlugin``: inputs from the capture, pacing, commands, config."""

    def __init__(
        self,
        plugin: BusinessPlugin,
        *,
        on_error: Callable[[str], None],
        on_command_done: Callable[[CommandOutcome], None],
        engine: EngineClient | None = None,
    ) -> None:
        self.plugin = plugin
        self.engine = engine
        ctx = plugin.context
        self.name = f"{ctx.pipeline}/{ctx.signature}/{ctx.instance_id}"
        self._items: collections.deque[CaptureItem] = collections.deque(maxlen=MAX_PENDING_ITEMS)
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._on_error = on_error
        self._on_command_done = on_command_done
        self._thread = threading.Thread(target=self._run, name=f"meshops-plugin-{self.name}")
        self.runs = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.paused = False

    @property
    def config(self) -> PluginConfig:
        return self.plugin.config

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("instance %s did not stop within %.1f s", self.name, timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- called from other threads -------------------------------------------------------

    def offer(self, item: CaptureItem) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._wake.set()

    def command(self, command: Any, params: Mapping[str, Any]) -> None:
        self._events.put(("command", (command, dict(params))))
        self._wake.set()

    def reconfigure(self, config: PluginConfig) -> None:
        """Apply an already validated config on the instance thread."""
        self._events.put(("config", config))
        self._wake.set()

    # ---- the instance thread -------------------------------------------------------------

    def _report(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        log.warning("instance %s: %s", self.name, self.last_error, exc_info=exc)
        self._on_error(self.last_error)

    def _run(self) -> None:
        try:
            self.plugin.on_init()
        except Exception as exc:
            self._report("on_init failed", exc)
        next_run = time.monotonic()
        ahead: _Submitted | None = None  # sent to the model server, not yet processed
        while not self._stop.is_set():
            self._handle_events()
            now = time.monotonic()
            if now < next_run:
                wait = next_run - now
            elif self.paused:
                wait = 0.5
            elif ahead is None and not self._items and not self.config.allow_empty_inputs:
                wait = 1.0  # until the capture offers something (offer() wakes us)
            else:
                next_run = now + self.config.process_delay
                if self.engine is None:
                    self._process(PluginInputs(items=tuple(self._drain())))
                    continue
                # Two requests in flight at most: while the server works on one and the
                # plugin handles the answer to the other, the server is never idle.
                current = ahead or self._submit(tuple(self._drain()))
                ahead = self._submit(tuple(self._drain())) if self._items else None
                inputs = self._collect(current)
                if ahead is None and self._items:
                    ahead = self._submit(tuple(self._drain()))
                if inputs is not None:
                    self._process(inputs)
                continue
            self._wake.wait(wait)
            self._wake.clear()
        if ahead is not None:
            self._collect(ahead)  # let the server finish with our shared memory
        try:
            self.plugin.on_close()
        except Exception as exc:
            self._report("on_close failed", exc)
        self.release_engine()

    def release_engine(self) -> None:
        """Give the model server back (the last user's release stops it)."""
        if self.engine is not None:
            self.engine.close()

    def _drain(self) -> list[CaptureItem]:
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items

    def _submit(self, items: tuple[CaptureItem, ...]) -> _Submitted:
        """Send the items' model inputs to the server (None marks an item the plugin skips)."""
        assert self.engine is not None
        try:
            wanted = [self.plugin.model_input(item) for item in items]
            asked = [x for x in wanted if x is not None]
            request = self.engine.submit(asked) if asked else None
        except Exception as exc:
            self._report(f"inference on {self.engine.engine} failed", exc)
            return _Submitted(items, [], None, failed=True)
        return _Submitted(items, wanted, request)

    def _collect(self, submitted: _Submitted) -> PluginInputs | None:
        """The plugin's inputs with the server's answers; None (reported) if it failed."""
        assert self.engine is not None
        if submitted.failed:
            return None
        try:
            answer = self.engine.result(submitted.request) if submitted.request else None
        except Exception as exc:
            self._report(f"inference on {self.engine.engine} failed", exc)
            return None
        results = iter(answer.results if answer else [])
        inferences = tuple(None if x is None else next(results) for x in submitted.wanted)
        return PluginInputs(items=submitted.items, inferences=inferences)

    def _process(self, inputs: PluginInputs) -> None:
        self.runs += 1
        try:
            result = self.plugin.process(inputs)
            if result:
                self.plugin.context.emit(dict(result))
        except Exception as exc:
            self._report("process failed", exc)

    def _handle_events(self) -> None:
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "config":
                try:
                    self.plugin.on_config(value)
                except Exception as exc:
                    self._report("on_config failed", exc)
            elif kind == "command":
                command, params = value
                try:
                    result = self.plugin.on_command(command, params)
                    if result:
                        self.plugin.context.emit(dict(result))
                    self._on_command_done(CommandOutcome(True, "command done", command))
                except Exception as exc:
                    self._report("command failed", exc)
                    self._on_command_done(
                        CommandOutcome(False, f"{type(exc).__name__}: {exc}", command)
                    )
