"""``VideoStream``: frames from a camera (RTSP/HTTP URL) or a local device index.

With ``LIVE_FEED`` (the default here, as in the reference) a side thread drains the source
and each tick takes the newest frame, so plugins never see a backlog; without it each tick
reads the next frame in order, for sources that must not lose any. A failed or silent source
raises, and the base re-opens it when ``RECONNECTABLE``: every blocking OpenCV call has a
timeout (``OPEN_TIMEOUT``, ``READ_TIMEOUT``), so a dead camera is noticed and retried.
Frames are BGR numpy arrays, as OpenCV decodes them.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pydantic import Field, field_validator

from meshops.capture._latest_frame import LatestFrameReader
from meshops.capture._opencv import open_video, redact_url, video_info
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.errors import PluginError

__all__ = ["VideoStreamCapture", "VideoStreamConfig"]

log = logging.getLogger(__name__)


class VideoStreamConfig(CaptureConfig):
    """Reference keys (``URL``, ``LIVE_FEED``, ``USE_FFMPEG``, ``CAP_PROP_BUFFERSIZE``) plus
    MeshOps' ``OPEN_TIMEOUT`` and ``READ_TIMEOUT`` (seconds)."""

    url: str | int = Field(
        description="rtsp://, http(s):// or any URL FFmpeg reads; an int (or digits) is a "
        "local camera index."
    )
    live_feed: bool = Field(default=True, description="Keep only the newest frame.")
    use_ffmpeg: bool = Field(default=False, description="Force OpenCV's FFMPEG backend.")
    cap_prop_buffersize: int = Field(default=0, ge=0, description="OpenCV buffer; 0: default.")
    open_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds to connect.")
    read_timeout: float = Field(
        default=5.0, gt=0, le=300, description="Seconds without a frame before reconnecting."
    )

    @field_validator("url")
    @classmethod
    def _device_index(cls, value: str | int) -> str | int:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("must not be empty")
            if value.isdigit():
                return int(value)
        elif value < 0:
            raise ValueError("a device index must be >= 0")
        return value


class VideoStreamCapture(DataCapture):
    """A live video source; ``metadata`` carries the reference's stream info keys.

    ``metadata``: ``url`` (password redacted), ``fps``, ``frame_w``, ``frame_h``,
    ``frame_count`` (0 for live sources), ``frame_current`` (frames delivered since this
    connection opened) and ``dropped`` (stale frames skipped under ``LIVE_FEED``).
    """

    TYPE: ClassVar[str] = "VideoStream"
    CONFIG: ClassVar[type[CaptureConfig]] = VideoStreamConfig
    config: VideoStreamConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source = redact_url(self.config.url)
        self._capture: Any = None
        self._reader: LatestFrameReader | None = None
        self._info: dict[str, Any] = {}
        self._frame = 0

    def open(self) -> None:
        cfg = self.config
        capture = open_video(
            cfg.url,
            use_ffmpeg=cfg.use_ffmpeg,
            open_timeout_s=cfg.open_timeout,
            read_timeout_s=cfg.read_timeout,
            buffer_size=cfg.cap_prop_buffersize,
        )
        self._info = {"url": self._source, **video_info(capture)}
        self._frame = 0
        if cfg.live_feed:
            self._reader = LatestFrameReader(
                capture, f"meshops-capture-{cfg.name}-reader", self._source
            )
            self._reader.start()
        else:
            self._capture = capture
        log.info("capture %s: connected to %s (%s)", cfg.name, self._source, self._info)

    def read(self) -> CaptureItem | None:
        if self._reader is not None:
            frame = self._reader.next_frame(self._stop, self.config.read_timeout)
            if frame is None:  # stop requested
                return None
            dropped = self._reader.dropped
        else:
            ok, frame = self._capture.read()
            if not ok:
                raise PluginError(f"{self._source}: the stream ended or a read failed")
            dropped = 0
        self._frame += 1
        metadata = {**self._info, "frame_current": self._frame, "dropped": dropped}
        return CaptureItem(image=frame, metadata=metadata)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop(self.config.read_timeout + 1.0)
            self._reader = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None
