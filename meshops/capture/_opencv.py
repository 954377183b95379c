"""OpenCV helpers shared by the video captures (and by ``OnDemandInput`` images).

OpenCV is the optional ``meshops[vision]`` extra, so it is imported only when a video
capture opens: a node without it still loads every capture type, and only a pipeline that
needs video fails, with an error saying what to install.
"""

from __future__ import annotations

import base64
import binascii
import re
from types import ModuleType
from typing import Any

from meshops.errors import PluginError

__all__ = ["decode_image", "open_video", "redact_url", "require_cv2", "video_info"]

_CREDENTIALS = re.compile(r"//([^:/@\s]*):[^/\s]*@")


def require_cv2() -> ModuleType:
    """The ``cv2`` module, or a ``PluginError`` naming the extra to install."""
    try:
        import cv2
    except ImportError as exc:
        raise PluginError(
            "video captures need OpenCV: pip install 'meshops[vision]' "
            f"(opencv-python-headless); import failed: {exc}"
        ) from exc
    return cv2


def redact_url(url: str | int) -> str:
    """``url`` fit for logs and notifications: a password in it is replaced by ``***``."""
    return _CREDENTIALS.sub(r"//\1:***@", str(url))


def open_video(
    source: str | int,
    *,
    use_ffmpeg: bool = False,
    open_timeout_s: float | None = None,
    read_timeout_s: float | None = None,
    buffer_size: int = 0,
) -> Any:
    """An opened ``cv2.VideoCapture`` on ``source`` (path, URL or device index).

    The timeouts bound how long opening and each read may block on a network stream
    (FFMPEG backend); without them a dead camera can hang the capture thread for minutes.
    """
    cv2 = require_cv2()
    api = cv2.CAP_FFMPEG if use_ffmpeg else cv2.CAP_ANY
    params: list[int] = []
    if isinstance(source, str):  # device backends (V4L2) refuse these properties
        if open_timeout_s is not None:
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000)]
        if read_timeout_s is not None:
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
    capture = cv2.VideoCapture(source, api, params)
    if not capture.isOpened():
        capture.release()
        raise PluginError(f"OpenCV cannot open {redact_url(source)}")
    if buffer_size > 0:
        capture.set(cv2.CAP_PROP_BUFFERSIZE, buffer_size)
    return capture


def video_info(capture: Any) -> dict[str, Any]:
    """What the source says about itself, under the reference's ``video_stream_info`` keys.

    ``frame_count`` is 0 for live streams (FFMPEG reports a huge negative number there).
    """
    cv2 = require_cv2()
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return {
        "fps": float(fps) if fps and fps > 0 else None,
        "frame_w": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        "frame_h": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        "frame_count": int(count) if count and count > 0 else 0,
    }


def decode_image(text: str) -> Any:
    """A BGR image from base64 text of an encoded picture (JPEG, PNG, ...), as sent by SDKs."""
    cv2 = require_cv2()
    import numpy as np

    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]  # a data URL: data:image/jpeg;base64,....
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PluginError(f"IMG: not valid base64: {exc}") from exc
    image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PluginError(f"IMG: {len(raw)} bytes that OpenCV cannot decode as an image")
    return image
