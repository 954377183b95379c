"""One named thread that hands received messages to their handlers.

Network callbacks (paho's loop thread, the in-memory bus) only enqueue; user code runs
here, so a slow or failing handler never stalls keep-alives or acknowledgements, and an
exception in a handler is logged with its topic and never kills the thread.
"""

from __future__ import annotations

import logging
import queue
import threading

from meshops.errors import TransportError
from meshops.transport.base import MessageHandler
from meshops.transport.matching import topic_matches, validate_filter

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

_POLL_S = 0.1
_WAKE = ("", b"")  # put on the queue by stop() so the thread notices at once


class Dispatcher:
    """Routes ``(topic, payload)`` to the handlers whose filter matches, else to ``default``.

    A message that matches several routes goes to each of them, once.
    """

    def __init__(self, name: str, default: MessageHandler | None = None) -> None:
        self.name = name
        self._default = default
        self._routes: dict[str, MessageHandler] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handled = 0
        self.failed = 0

    def add_route(self, topic_filter: str, handler: MessageHandler) -> None:
        validate_filter(topic_filter)
        with self._lock:
            self._routes[topic_filter] = handler

    def remove_route(self, topic_filter: str) -> None:
        with self._lock:
            self._routes.pop(topic_filter, None)

    def submit(self, topic: str, payload: bytes) -> None:
        """Enqueue a message; safe from any thread, never blocks."""
        self._queue.put((topic, payload))

    def start(self) -> None:
        if self._thread is not None:
            raise TransportError(f"dispatcher {self.name} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the message being handled; queued messages are dropped."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._queue.put(_WAKE)
        thread.join(timeout)
        if thread.is_alive():
            raise TransportError(f"dispatcher thread {self.name} did not stop in {timeout} s")
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if not self._stop.is_set():
                self._dispatch(topic, payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        with self._lock:
            handlers = [h for f, h in self._routes.items() if topic_matches(f, topic)]
        if not handlers and self._default is not None:
            handlers = [self._default]
        if not handlers:
            log.debug("%s: no handler for message on %s (%d bytes)", self.name, topic, len(payload))
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:
                self.failed += 1
                log.exception(
                    "%s: handler %s failed on a message on %s (%d bytes)",
                    self.name,
                    getattr(handler, "__qualname__", repr(handler)),
                    topic,
                    len(payload),
                )
            else:
                self.handled += 1
