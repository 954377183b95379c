"""Plugin payloads for the user: verified ``Payload`` objects, streams and callbacks.

Every payload reaches this module already verified (``parse_message``: signature, replay,
age) and is routed the reference SDK's way, by the verified ``EE_SENDER`` and the
``EE_PAYLOAD_PATH`` ``[node, pipeline, signature, instance]``, never by body fields.
Iterators get their own bounded queue (the oldest payloads are dropped, and counted, when a
reader falls behind); callbacks run on one named thread per session, so a slow callback
never delays the confirmations the session is waiting for.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from meshops.protocol import Message, is_address, parse_address

__all__ = ["Payload", "PayloadFilter", "PayloadRouter", "PayloadStream", "Subscription"]

log = logging.getLogger(__name__)

PayloadCallback = Callable[["Payload"], None]
Resolver = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Payload:
    """One plugin payload: who sent it (``node`` alias, verified ``node_address``), from which
    pipeline and instance, its body (``data``, UPPER_CASE keys) and when it was sent."""

    node: str | None
    node_address: str
    pipeline: str | None
    signature: str | None
    instance_id: str | None
    data: dict[str, Any]
    timestamp: dt.datetime | None
    message: Message = field(repr=False, compare=False)

    @classmethod
    def from_message(cls, message: Message) -> Payload:
        alias, pipeline, signature, instance_id = message.path
        return cls(
            node=alias,
            node_address=message.sender,
            pipeline=pipeline,
            signature=signature,
            instance_id=instance_id,
            data=message.body,
            timestamp=message.timestamp,
            message=message,
        )

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass(frozen=True)
class PayloadFilter:
    """Which payloads to take; None matches anything. ``node`` is an address or an alias:
    an alias is matched through the session's directory once the node is known."""

    node: str | None = None
    pipeline: str | None = None
    instance_id: str | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        if self.signature is not None:
            object.__setattr__(self, "signature", self.signature.upper())

    def matches(self, payload: Payload, resolve: Resolver) -> bool:
        if self.pipeline is not None and payload.pipeline != self.pipeline:
            return False
        if self.instance_id is not None and payload.instance_id != self.instance_id:
            return False
        if self.signature is not None and (payload.signature or "").upper() != self.signature:
            return False
        if self.node is None:
            return True
        if is_address(self.node):
            return parse_address(self.node) == payload.node_address
        known = resolve(self.node)
        if known is not None:
            return known == payload.node_address
        return payload.node == self.node  # not heard from yet: its signed claim of its alias


_END = object()


class PayloadStream(Iterator[Payload]):
    """An iterator over matching payloads, from its creation on.

    Ends when ``timeout`` seconds have passed since it was made (if given), when closed, or
    when the session closes. Close it (or use ``with``) when done; a stream dropped without
    closing stops receiving once garbage-collected (the router holds it weakly).
    """

    def __init__(
        self,
        router: PayloadRouter,
        selector: PayloadFilter,
        timeout: float | None = None,
        maxsize: int = 10_000,
    ) -> None:
        self.filter = selector
        self.dropped = 0
        self._router = router
        self._items: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._ended = False

    def put(self, item: Any) -> None:
        with self._cond:
            if self._ended:
                return
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Payload | None:
        """The next payload, or None when none came in ``timeout`` s (or the stream ended)."""
        limit = self._deadline
        if timeout is not None:
            own = time.monotonic() + timeout
            limit = own if limit is None else min(limit, own)
        with self._cond:
            while not self._items:
                if self._ended:
                    return None
                wait = None if limit is None else limit - time.monotonic()
                if wait is not None and wait <= 0:
                    return None
                self._cond.wait(wait)
            item = self._items.popleft()
            if item is _END:
                self._ended = True
                self._items.clear()
                return None
            return item

    def __next__(self) -> Payload:
        item = self.get()
        if item is None:
            raise StopIteration
        return item

    def __iter__(self) -> Self:
        return self

    def close(self) -> None:
        """Stop receiving; what was queued is dropped."""
        self._router.remove_stream(self)
        with self._cond:
            self._ended = True
            self._items.clear()
            self._cond.notify_all()

    def end(self) -> None:
        """No more payloads will come (the session closed); what is queued can still be read."""
        self.put(_END)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription:
    """A callback registered for payloads; ``cancel()`` stops it."""

    def __init__(self, router: PayloadRouter, selector: PayloadFilter, callback: PayloadCallback):
        self.filter = selector
        self.callback = callback
        self._router = router

    def cancel(self) -> None:
        self._router.remove_callback(self)


class PayloadRouter:
    """Hands each payload to the matching streams and callbacks of one session."""

    def __init__(self, name: str, resolve: Resolver) -> None:
        self._resolve = resolve
        self._streams: weakref.WeakSet[PayloadStream] = weakref.WeakSet()  # dropped ones go
        self._callbacks: dict[Subscription, None] = {}
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Subscription, Payload] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"meshops-sdk-callbacks-{name}")
        self._thread.daemon = True
        self.delivered = 0
        self.callback_errors = 0

    # ---- registration --------------------------------------------------------------------

    def open_stream(self, selector: PayloadFilter, timeout: float | None = None) -> PayloadStream:
        stream = PayloadStream(self, selector, timeout)
        with self._lock:
            self._streams.add(stream)
        return stream

    def remove_stream(self, stream: PayloadStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def add_callback(self, selector: PayloadFilter, callback: PayloadCallback) -> Subscription:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        subscription = Subscription(self, selector, callback)
        with self._lock:
            self._callbacks[subscription] = None
        return subscription

    def remove_callback(self, subscription: Subscription) -> None:
        with self._lock:
            self._callbacks.pop(subscription, None)

    # ---- delivery (transport thread) -----------------------------------------------------

    def deliver(self, payload: Payload) -> None:
        with self._lock:
            streams = list(self._streams)
            callbacks = list(self._callbacks)
        for stream in streams:
            if stream.filter.matches(payload, self._resolve):
                stream.put(payload)
        for subscription in callbacks:
            if subscription.filter.matches(payload, self._resolve):
                self._jobs.put((subscription, payload))
        self.delivered += 1

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            subscription, payload = job
            try:
                subscription.callback(payload)
            except Exception:
                self.callback_errors += 1
                log.exception(
                    "payload callback %s failed on a payload of %s/%s/%s",
                    getattr(subscription.callback, "__qualname__", subscription.callback),
                    payload.node,
                    payload.pipeline,
                    payload.instance_id,
                )

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        """End every stream, run the callbacks already queued, stop the callback thread."""
        with self._lock:
            streams = list(self._streams)
            self._streams.clear()
            self._callbacks.clear()
        for stream in streams:
            stream.end()
        if self._thread.is_alive():
            self._jobs.put(None)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout)
                if self._thread.is_alive():
                    log.warning("%s did not stop within %.1f s", self._thread.name, timeout)
