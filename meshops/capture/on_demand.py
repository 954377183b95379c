"""``OnDemandInput``: data that arrives by command (``PIPELINE_COMMAND``) instead of a source.

The node hands each command's payload to :meth:`OnDemandInputCapture.feed`, on the node's
thread; it lands in a bounded queue and the capture thread delivers items in arrival order,
at most ``CAP_RESOLUTION`` per second (default 10, as the reference). Like the reference,
a command ``{"STRUCT_DATA": ...}`` becomes structured data and ``{"IMG": <base64>}`` an
image; any other payload is delivered as it came. ``feed`` never blocks the node: when the
queue is full the oldest waiting item is dropped, logged and counted in ``dropped``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from meshops.capture._opencv import decode_image
from meshops.capture._queue import DropOldestQueue
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture

__all__ = ["OnDemandInputCapture", "OnDemandInputConfig"]

log = logging.getLogger(__name__)


class OnDemandInputConfig(CaptureConfig):
    """``MAX_DEQUE_LEN`` bounds the waiting items; ``URL`` is unused (the reference sends 0)."""

    url: str | int | None = None
    cap_resolution: float = Field(default=10.0, gt=0, le=1000, description="Items per second.")
    max_deque_len: int = Field(default=128, ge=1, le=100_000, description="Waiting items.")


class OnDemandInputCapture(DataCapture):
    """Delivers fed data in order; ``read`` waits for the next command (or a stop)."""

    TYPE: ClassVar[str] = "OnDemandInput"
    CONFIG: ClassVar[type[CaptureConfig]] = OnDemandInputConfig
    config: OnDemandInputConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: DropOldestQueue[CaptureItem] = DropOldestQueue(self.config.max_deque_len)

    @property
    def dropped(self) -> int:
        """Items lost because commands came faster than the pipeline took them."""
        return self._queue.dropped

    def feed(self, data: Any) -> None:
        """Queue one command's payload; raises ``PluginError`` for an undecodable ``IMG``."""
        item = _item_from_command(data)
        if self._queue.put(item):
            log.warning(
                "capture %s: queue full (%d), dropped the oldest item (%d dropped so far)",
                self.config.name,
                self.config.max_deque_len,
                self._queue.dropped,
            )

    def open(self) -> None:
        """Nothing to connect to; items fed before the start are kept."""

    def read(self) -> CaptureItem | None:
        # None only once stop() was called: there is no end to on-demand data.
        return self._queue.get(self._stop, latest=self.config.live_feed)


def _item_from_command(data: Any) -> CaptureItem:
    if isinstance(data, Mapping) and ("STRUCT_DATA" in data or "IMG" in data):
        image = data.get("IMG")
        return CaptureItem(
            data=data.get("STRUCT_DATA"),
            image=decode_image(image) if isinstance(image, str) else image,
        )
    return CaptureItem(data=data)
