"""``VideoFile``: frames of a local video file, one per tick.

For replaying recordings and evaluating models, every frame matters more than wall-clock
time, so the capture reads exactly one frame per ``1 / CAP_RESOLUTION`` seconds and never
skips (set ``CAP_RESOLUTION`` to the file's fps to replay in real time). At the end it
finishes (``read`` returns None), or with ``LOOP`` starts again from the first frame.
Frames are BGR numpy arrays, as OpenCV decodes them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from meshops.capture._files import local_path, require_readable
from meshops.capture._opencv import open_video, video_info
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.errors import PluginError

__all__ = ["VideoFileCapture", "VideoFileConfig"]

log = logging.getLogger(__name__)


class VideoFileConfig(CaptureConfig):
    """``URL`` is the file (a path or ``file://`` URL); ``LOOP`` replays it for ever."""

    url: str = Field(min_length=1, description="Path of the video file on the node.")
    loop: bool = Field(default=False, description="Start again at the end instead of finishing.")


class VideoFileCapture(DataCapture):
    """Reads a video file frame by frame; metadata carries the reference's stream info keys.

    ``metadata``: ``url``, ``fps``, ``frame_w``, ``frame_h``, ``frame_count`` (from the
    container), ``frame_current`` (1-based position in the file) and ``loops`` (restarts).
    """

    TYPE: ClassVar[str] = "VideoFile"
    CONFIG: ClassVar[type[CaptureConfig]] = VideoFileConfig
    config: VideoFileConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path: Path = local_path(self.config.url)
        self._capture: Any = None
        self._info: dict[str, Any] = {}
        self._frame = 0
        self._loops = 0

    def open(self) -> None:
        self._loops = 0
        self._start()
        log.info("capture %s: playing %s (%s)", self.config.name, self._path, self._info)

    def _start(self) -> None:
        require_readable(self._path)
        try:
            self._capture = open_video(str(self._path))
        except PluginError as exc:
            raise PluginError(f"{self._path}: not a video OpenCV can read ({exc})") from exc
        self._info = {"url": str(self._path), **video_info(self._capture)}
        self._frame = 0

    def read(self) -> CaptureItem | None:
        ok, frame = self._capture.read()
        if not ok:
            if not self.config.loop:
                log.info("capture %s: end of %s", self.config.name, self._path)
                return None
            if self._frame == 0:
                raise PluginError(f"{self._path}: no frame could be read")
            self.close()
            self._start()
            self._loops += 1
            ok, frame = self._capture.read()
            if not ok:
                raise PluginError(f"{self._path}: no frame could be read after rewinding")
        self._frame += 1
        metadata = {**self._info, "frame_current": self._frame, "loops": self._loops}
        return CaptureItem(image=frame, metadata=metadata)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
