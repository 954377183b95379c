"""``EmbeddedBroker``: a pure-Python MQTT 3.1.1 broker (amqtt) for one machine, no set-up.

Why embedded: ``meshops up`` must work right after ``pip install``, with no Mosquitto.
The broker runs on its own named thread with its own asyncio loop, so it lives happily
next to threaded code (tests, the node). We open the listening socket ourselves and hand
connections to amqtt as an "external" listener: that gives us the real port when asked
for port 0 and a clear ``BrokerError`` when the port is busy. amqtt keeps no state on
disk: a restart forgets sessions and subscriptions, like a Mosquitto without persistence.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker

from meshops.errors import BrokerError

__all__ = ["EmbeddedBroker", "run_broker"]

log = logging.getLogger(__name__)

_LISTENER = "default"
_NOISY_LOGGERS = ("amqtt", "transitions")


class EmbeddedBroker:
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
        """Close every connection and the listener; join the broker thread."""
        loop, stop_event = self._loop, self._stop_event
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.host!r}, {self._port or self._requested_port})"

    # ---- broker thread -------------------------------------------------------------------

    def _thread_main(self, port: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(port))
        except Exception as exc:
            log.exception("embedded broker on %s:%s failed", self.host, port)
            self._error = self._error or exc
        finally:
            self._ready.set()
            self._stop_event = None
            try:
                _cancel_leftovers(loop)
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
            server.close()
            await broker.shutdown()
            await asyncio.wait_for(server.wait_closed(), 5.0)

    @staticmethod
    async def _on_connection(
        broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await broker.external_connected(
            StreamReaderAdapter(reader), StreamWriterAdapter(writer), _LISTENER
        )


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks amqtt left behind (client handlers) so the loop closes cleanly."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


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
