"""One named thread that hands received messages to their handlers.

Network callbacks (paho's loop thread, the in-memory bus) only enqueue; user code runs
here, so a slow or failing handler never stalls keep-alives or acknowledgements, and an
exception in a handler is logged with its topic and never kills the thread.

The queue is bounded by bytes (``max_bytes``): when handlers fall that far behind, ``submit``
waits up to ``BLOCK_S`` (paho then stops acknowledging, so the broker slows the sender down),
and after that drops the message, counts it in ``dropped`` and logs it: a flood can slow a
node, never exhaust its memory.
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
MAX_QUEUED_BYTES = 256 * 1024 * 1024
BLOCK_S = 2.0


class Dispatcher:
    """Routes ``(topic, payload)`` to the handlers whose filter matches, else to ``default``.

    A message that matches several routes goes to each of them, once.
    """

    def __init__(
        self,
        name: str,
        default: MessageHandler | None = None,
        *,
        max_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._queued_bytes = 0
        self._room = threading.Condition()
        self.dropped = 0
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
        """Enqueue a message; safe from any thread. Waits (at most ``BLOCK_S``) only while
        ``max_bytes`` are already queued, then drops the message (counted and logged)."""
        size = len(payload)
        with self._room:
            if self._queued_bytes + size > self.max_bytes and not self._room.wait_for(
                lambda: self._queued_bytes + size <= self.max_bytes or self._stop.is_set(),
                BLOCK_S,
            ):
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "%s: handlers are %d bytes behind; dropped %d message(s) so far "
                        "(latest on %s)",
                        self.name,
                        self._queued_bytes,
                        self.dropped,
                        topic,
                    )
                return
            self._queued_bytes += size
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
            with self._room:
                self._queued_bytes -= len(payload)
                self._room.notify_all()
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
