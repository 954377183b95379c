"""``Void``: a pipeline with no data source.

Custom-code and REST plugins (``CUSTOM_EXEC_01``, ``REST_CUSTOM_EXEC_01``) run on a Void
pipeline: they have no input, so the capture only beats time. Each tick yields an empty
:class:`CaptureItem`, which plugins with ``ALLOW_EMPTY_INPUTS`` take as "run now". It never
ends and cannot fail.
"""

from __future__ import annotations

from typing import ClassVar

from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture

__all__ = ["VoidCapture", "VoidConfig"]


class VoidConfig(CaptureConfig):
    """Only the common keys matter: ``CAP_RESOLUTION`` is how often plugins are woken."""


class VoidCapture(DataCapture):
    """An empty item every ``1 / CAP_RESOLUTION`` seconds, for ever."""

    TYPE: ClassVar[str] = "Void"
    CONFIG: ClassVar[type[CaptureConfig]] = VoidConfig

    def open(self) -> None:
        """Nothing to connect to."""

    def read(self) -> CaptureItem:
        return CaptureItem()
