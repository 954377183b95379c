"""``LatestFrameReader``: a named thread that drains a video source and keeps the newest frame.

Why a thread: a camera or RTSP server pushes frames at its own rate, and OpenCV/FFmpeg buffer
what is not read. A capture paced slower than the source would then hand plugins frames
seconds old. Reading continuously on a side thread and keeping only the last frame gives
``LIVE_FEED`` semantics: each tick sees the most recent picture, and stale ones are dropped
(and counted). The thread owns the ``VideoCapture`` once started and releases it itself, so
nothing releases it while a read is in progress.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from meshops.capture._queue import POLL_S
from meshops.errors import PluginError

__all__ = ["LatestFrameReader"]

log = logging.getLogger(__name__)


class LatestFrameReader:
    """Reads ``capture`` on thread ``name`` until stopped or the source fails."""

    def __init__(self, capture: Any, name: str, source: str) -> None:
        self._capture = capture
        self._source = source
        self._cond = threading.Condition()
        self._frame: Any = None
        self._seq = 0
        self._taken = 0
        self._failure: str | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0
        """Frames read from the source but replaced by a newer one before anyone took them."""

    def start(self) -> None:
        self._thread.start()

    def next_frame(self, stop: threading.Event, timeout: float) -> Any | None:
        """A frame newer than the last one taken; None once ``stop`` is set.

        Raises ``PluginError`` when the source failed or sent nothing for ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq == self._taken:
                if self._failure is not None:
                    raise PluginError(self._failure)
                if stop.is_set():
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PluginError(f"no frame from {self._source} for {timeout:.1f} s")
                self._cond.wait(min(POLL_S, left))
            self.dropped += self._seq - self._taken - 1
            self._taken = self._seq
            return self._frame

    def stop(self, timeout: float) -> None:
        """Ask the thread to end and wait up to ``timeout`` s (one blocked read at most)."""
        self._halt.set()
        if self._thread.ident is None:  # never started: the capture is still ours
            self._capture.release()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "%s: still blocked reading %s after %.1f s; it ends with that read",
                self._thread.name,
                self._source,
                timeout,
            )

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                ok, frame = self._capture.read()
                if not ok:
                    self._fail(f"{self._source}: the stream ended or a read failed")
                    return
                with self._cond:
                    self._frame = frame
                    self._seq += 1
                    self._cond.notify_all()
        except Exception as exc:  # reported to the capture thread, which reconnects
            log.exception("%s: reading %s failed", self._thread.name, self._source)
            self._fail(f"{self._source}: read failed: {exc}")
        finally:
            self._capture.release()

    def _fail(self, message: str) -> None:
        with self._cond:
            self._failure = message
            self._cond.notify_all()
