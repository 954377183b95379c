"""The data-capture API: where a pipeline's data comes from.

A capture type is a class with a ``TYPE`` (the pipeline's ``TYPE`` value), a ``CONFIG`` model
and three hooks: ``open`` (connect to the source), ``read`` (the next item, or None at the end
of a finite source) and ``close``. The base class owns the named thread: it paces reads to
``CAP_RESOLUTION`` items per second, hands items to the pipeline's sink, and on an error
reports it, closes, waits (backoff) and re-opens when ``RECONNECTABLE``; a capture never takes
the node down. Data sent to the pipeline by command arrives through ``feed``.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from meshops._validation import WireModel
from meshops.errors import PluginError

__all__ = ["CaptureConfig", "CaptureItem", "DataCapture"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureItem:
    """One observation: structured data, an image, or both.

    ``image`` is a numpy array (H x W x 3, BGR as OpenCV gives it) for video captures;
    ``data`` holds anything JSON-like (a sensor reading, a CSV row, data sent by command).
    """

    data: Any = None
    image: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


class CaptureConfig(WireModel):
    """The pipeline-level settings a capture reads (the rest of the pipeline config is kept)."""

    name: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1)
    url: str | int | None = None
    reconnectable: bool | str = Field(
        default=True,
        description="Re-open after an error: true/YES/Y/T/TRUE/KEEPALIVE (the reference's values).",
    )
    live_feed: bool = Field(default=False, description="Drop stale items rather than queue them.")
    cap_resolution: float = Field(default=1.0, gt=0, le=1000, description="Reads per second.")
    stream_config_metadata: dict[str, Any] = Field(default_factory=dict)


Sink = Callable[[CaptureItem], None]
ErrorReport = Callable[[str], None]


class DataCapture(ABC):
    """Subclass, set ``TYPE`` (and ``CONFIG``), implement ``open``/``read``/``close``."""

    TYPE: ClassVar[str]
    CONFIG: ClassVar[type[CaptureConfig]] = CaptureConfig
    RETRY_MIN_S: ClassVar[float] = 0.5
    RETRY_MAX_S: ClassVar[float] = 10.0

    def __init__(
        self, config: CaptureConfig, sink: Sink, *, on_error: ErrorReport | None = None
    ) -> None:
        self.config = config
        self._sink = sink
        self._on_error = on_error or (lambda message: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        """Set when a finite source ended (and will not be re-opened)."""
        self.items_read = 0
        self.errors = 0

    # ---- hooks ---------------------------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Connect to the source; raise on failure (the base retries when reconnectable)."""

    @abstractmethod
    def read(self) -> CaptureItem | None:
        """The next item; None when a finite source ended (or ``stop`` was called).

        Sources fed from a queue block until data arrives, checking ``self._stop``."""

    def close(self) -> None:
        """Release the source."""

    def feed(self, data: Any) -> None:
        """Data sent to the pipeline by command; only on-demand captures take it."""
        raise PluginError(f"capture type {self.TYPE} does not take data by command")

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("capture already started")
        self._thread = threading.Thread(
            target=self._run, name=f"meshops-capture-{self.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("capture %s did not stop within %.1f s", self.config.name, timeout)

    @property
    def _reconnectable(self) -> bool:
        value = self.config.reconnectable
        if isinstance(value, bool):
            return value
        return value.strip().upper() in {"YES", "Y", "T", "TRUE", "KEEPALIVE", "KEEP_ALIVE"}

    def _emit(self, item: CaptureItem) -> None:
        """Hand one item on; a failing sink is reported, and the source is not re-opened
        (re-opening a file would replay what was already delivered)."""
        self.items_read += 1
        try:
            self._sink(item)
        except Exception as exc:
            message = f"capture {self.config.name}: delivering an item failed: {exc}"
            log.exception("%s", message)
            self._on_error(message)

    def _run(self) -> None:
        period = 1.0 / self.config.cap_resolution
        delay = self.RETRY_MIN_S
        while not self._stop.is_set():
            try:
                self.open()
                delay = self.RETRY_MIN_S
                next_at = time.monotonic()
                while not self._stop.is_set():
                    item = self.read()
                    if item is None:
                        if not self._stop.is_set():
                            self.finished.set()
                        return
                    self._emit(item)
                    next_at += period
                    wait = next_at - time.monotonic()
                    if wait > 0:
                        self._stop.wait(wait)
                    else:
                        next_at = time.monotonic()
            except Exception as exc:  # a capture failure is reported, never fatal
                self.errors += 1
                message = f"capture {self.config.name} ({self.TYPE}): {exc}"
                log.warning("%s", message)
                self._on_error(message)
                if not self._reconnectable:
                    self.finished.set()
                    return
            finally:
                self._close_quietly()
            self._stop.wait(delay)
            delay = min(delay * 2, self.RETRY_MAX_S)

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception:
            log.exception("capture %s: error while closing", self.config.name)
