"""``EmbeddedBroker``: a pure-Python MQTT 3.1.1 broker (amqtt) for one machine, no set-up.

Why embedded: ``meshops up`` must work right after ``pip install``, with no Mosquitto.
The broker runs on its own named thread with its own asyncio loop, so it lives happily
next to threaded code (tests, the node). We open the listening socket ourselves and hand
connections to amqtt as an "external" listener: that gives us the real port when asked
for port 0 and a clear ``BrokerError`` when the port is busy. amqtt keeps no state on
disk: a restart forgets sessions and subscriptions, like a Mosquitto without persistence.

Stopping does not rely on amqtt alone. ``Broker.shutdown()`` stops each client's protocol
handler by cancelling its reader task and then waiting for it without a bound; on Python
3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as a read completes
(CPython gh-86296), so with a client that keeps publishing the reader goes on reading and
``shutdown()`` never returns. We therefore close the listener first (no new connection is
taken), abort every client connection (each reader then sees EOF and ends whether or not a
cancellation was lost), let the sessions end, and only then run ``shutdown()``, within a
time bound. Whatever still does not end is cancelled and logged as a warning, and
:attr:`EmbeddedBroker.last_stop_forced` tells that it happened.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, Self

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker

from meshops.errors import BrokerError
from meshops.transport.base import StartStop

__all__ = ["EmbeddedBroker", "run_broker"]

log = logging.getLogger(__name__)

_LISTENER = "default"
_NOISY_LOGGERS = ("amqtt", "transitions")
# Most of stop()'s timeout that the broker thread may spend on a clean shutdown, and the
# cap on it; what is left is for cancelling stragglers and joining the thread.
_SHUTDOWN_SHARE = 0.4
_SHUTDOWN_GRACE_MAX = 2.0


class EmbeddedBroker(StartStop):
    """An amqtt broker on ``host:port`` (``port=0``: a free one), run on a named thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._quiet = quiet
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._grace = _SHUTDOWN_GRACE_MAX
        self._closing = False
        self._connections: dict[
            asyncio.Task[Any], tuple[asyncio.StreamWriter, StreamWriterAdapter]
        ] = {}
        self._forced = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("embedded broker is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def last_stop_forced(self) -> bool:
        """Whether the last stop had to cancel what did not end by itself (logged as warnings)."""
        return self._forced

    def start(self, timeout: float = 10.0) -> Self:
        """Start listening; raises ``BrokerError`` if that fails or takes over ``timeout``."""
        if self.running:
            raise BrokerError(f"embedded broker already running on {self.url}")
        if self._quiet:
            for name in _NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        self._ready.clear()
        self._error = None
        port = self._port if self._port is not None else self._requested_port
        self._thread = threading.Thread(
            target=self._thread_main, args=(port,), name=f"meshops-broker-{port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout)
            raise BrokerError(f"embedded broker on {self.host}:{port} did not start in {timeout} s")
        if self._error is not None:
            self._join(timeout)
            error, self._error = self._error, None
            raise BrokerError(
                f"embedded broker cannot listen on {self.host}:{port}: {error}"
            ) from error
        log.info("embedded broker listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; join the broker thread.

        Raises ``BrokerError`` if the thread is still alive after ``timeout``. The thread
        spends at most ``min(2, 0.4 * timeout)`` s on a clean shutdown before it cancels
        what is left (see :attr:`last_stop_forced`).
        """
        loop, stop_event = self._loop, self._stop_event
        self._grace = max(0.05, min(_SHUTDOWN_GRACE_MAX, _SHUTDOWN_SHARE * timeout))
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:
                log.debug("broker loop already closed")
        self._join(timeout)

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop and start again on the same port; sessions and subscriptions are forgotten."""
        self.stop(timeout)
        return self.start(timeout)

    def _join(self, timeout: float) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise BrokerError(f"embedded broker thread {thread.name} did not stop in {timeout} s")
        self._thread = None
        log.debug("embedded broker on %s:%s stopped", self.host, self._port)

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.host!r}, {self._port or self._requested_port})"

    # ---- broker thread -------------------------------------------------------------------

    def _thread_main(self, port: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._closing = False
        self._forced = False
        self._connections = {}
        try:
            loop.run_until_complete(self._serve(port))
        except Exception as exc:
            log.exception("embedded broker on %s:%s failed", self.host, port)
            self._error = self._error or exc
        finally:
            self._ready.set()
            self._stop_event = None
            try:
                if not _cancel_leftovers(loop, self._grace / 4):
                    self._forced = True
            finally:
                loop.close()
                self._loop = None

    async def _serve(self, port: int) -> None:
        self._stop_event = asyncio.Event()
        broker = Broker(
            {
                "listeners": {_LISTENER: {"type": "external"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            },
            loop=asyncio.get_running_loop(),
        )
        await broker.start()
        try:
            server = await asyncio.start_server(
                lambda r, w: self._on_connection(broker, r, w), self.host, port
            )
        except OSError as exc:
            self._error = exc
            await broker.shutdown()
            return
        try:
            self._port = server.sockets[0].getsockname()[1]
            threading.current_thread().name = f"meshops-broker-{self._port}"
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await self._shutdown(broker, server)

    async def _shutdown(self, broker: Broker, server: asyncio.Server) -> None:
        """Listener first, then the client connections, then amqtt, all within the grace."""
        loop = asyncio.get_running_loop()
        grace = self._grace
        deadline = loop.time() + grace
        # 1. Accept no new connection (one already accepted is aborted in _on_connection).
        self._closing = True
        server.close()
        # 2. Abort every client connection: its reader sees EOF and its session ends, even
        #    where amqtt's cancellation of that reader would be lost (see the module doc).
        connections = dict(self._connections)
        for writer, adapter in connections.values():
            _abort(writer, adapter)
        if connections:
            log.debug("embedded broker: aborted %d client connection(s)", len(connections))
            _done, pending = await asyncio.wait(
                set(connections), timeout=max(0.0, deadline - loop.time())
            )
            if pending:
                self._forced = True
                log.warning(
                    "embedded broker: %d client handler(s) still running %.1f s after their "
                    "connection was aborted; cancelling them: %s",
                    len(pending),
                    grace,
                    _names(pending),
                )
                await _cancel_and_wait(pending, grace / 4)
        # 3. amqtt's own shutdown, bounded: with no client connection left it is quick.
        shutdown = asyncio.create_task(broker.shutdown(), name="amqtt-shutdown")
        await asyncio.wait({shutdown}, timeout=max(0.05, deadline - loop.time()))
        if not shutdown.done():
            self._forced = True
            log.warning(
                "embedded broker: amqtt shutdown still running after %.1f s; cancelling it",
                grace,
            )
            await _cancel_and_wait({shutdown}, grace / 4)
        elif shutdown.exception() is not None:
            shutdown.result()  # amqtt's error goes up to _thread_main, which logs it
        # 4. On Python 3.12+ this also waits for the server's connections to be closed.
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.wait({closed}, timeout=max(0.05, deadline - loop.time()))
        if not closed.done():
            self._forced = True
            log.warning("embedded broker: the listener on port %s did not close", self._port)
            closed.cancel()

    async def _on_connection(
        self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        adapter = StreamWriterAdapter(writer)
        if self._closing:
            log.debug("embedded broker: aborted a connection accepted while stopping")
            _abort(writer, adapter)
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = (writer, adapter)
        try:
            await broker.external_connected(StreamReaderAdapter(reader), adapter, _LISTENER)
        finally:
            if task is not None:
                self._connections.pop(task, None)
            # amqtt leaves the socket open on some early exits (no CONNECT, for one)
            writer.transport.close()


def _abort(writer: asyncio.StreamWriter, adapter: StreamWriterAdapter) -> None:
    """Drop a client connection now; amqtt's later writes to it become no-ops."""
    adapter.is_closed = True  # the adapter's own flag: its write(), drain(), close() do nothing
    writer.transport.abort()


def _names(tasks: Iterable[asyncio.Task[Any]]) -> str:
    return ", ".join(sorted(f"{t.get_name()}:{t.get_coro().__qualname__}" for t in tasks))


async def _cancel_and_wait(tasks: set[asyncio.Task[Any]], timeout: float) -> bool:
    """Cancel ``tasks``, wait up to ``timeout``; False (and a warning) if some still run."""
    for task in tasks:
        task.cancel()
    _done, pending = await asyncio.wait(tasks, timeout=max(0.05, timeout))
    if pending:
        log.warning(
            "embedded broker: %d task(s) still running %.2f s after being cancelled: %s",
            len(pending),
            timeout,
            _names(pending),
        )
    return not pending


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    """Cancel the tasks amqtt left behind so the loop closes cleanly.

    Logs what it cancels (debug) and any error a task ended with (warning). Returns False,
    after a warning, if a task still runs ``timeout`` s after being cancelled.
    """
    tasks = {t for t in asyncio.all_tasks(loop) if not t.done()}
    ok = True
    if tasks:
        log.debug("embedded broker: cancelling %d leftover task(s): %s", len(tasks), _names(tasks))
        ok = loop.run_until_complete(_cancel_and_wait(tasks, timeout))
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning(
                    "embedded broker: task %s failed while being cancelled",
                    task.get_name(),
                    exc_info=task.exception(),
                )
    loop.run_until_complete(loop.shutdown_asyncgens())
    return ok


def run_broker(
    host: str = "127.0.0.1",
    port: int = 1883,
    *,
    on_ready: Callable[[EmbeddedBroker], None] | None = None,
    quiet: bool = True,
) -> None:
    """Run an embedded broker in the foreground until SIGINT or SIGTERM (``meshops broker``).

    Must be called from the main thread (signal handlers); the previous handlers are
    restored on return.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the embedded broker", signum)
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    broker = EmbeddedBroker(host, port, quiet=quiet)
    try:
        broker.start()
        if on_ready is not None:
            on_ready(broker)
        while not stop.wait(0.5):
            if not broker.running:
                raise BrokerError(f"embedded broker on {broker.url} stopped unexpectedly")
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
