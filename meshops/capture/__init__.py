"""The capture part: where a pipeline's data comes from (the pipeline's ``TYPE``).

- :class:`DataCapture`, :class:`CaptureConfig`, :class:`CaptureItem`: the API (``base``).
- :class:`VoidCapture` (``Void``): no data, an empty item per tick for plugins that only
  need to run (custom code, REST).
- :class:`VideoFileCapture` (``VideoFile``) and :class:`VideoStreamCapture` (``VideoStream``):
  frames from a file, a camera URL or a device (needs the ``meshops[vision]`` extra).
- :class:`OnDemandInputCapture` (``OnDemandInput``): data sent by ``PIPELINE_COMMAND``.
- :class:`IotQueueListenerCapture` (``IotQueueListener``): messages from an MQTT topic.
- :class:`StructuredFileCapture` (``StructuredFile``): rows of a CSV or JSON-lines file.

The node finds them through the ``meshops.capture`` entry points, as third-party types.
"""

from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.capture.iot_listener import IotQueueListenerCapture, IotQueueListenerConfig
from meshops.capture.on_demand import OnDemandInputCapture, OnDemandInputConfig
from meshops.capture.structured_file import StructuredFileCapture, StructuredFileConfig
from meshops.capture.video_file import VideoFileCapture, VideoFileConfig
from meshops.capture.video_stream import VideoStreamCapture, VideoStreamConfig
from meshops.capture.void import VoidCapture, VoidConfig

__all__ = [
    "CaptureConfig",
    "CaptureItem",
    "DataCapture",
    "IotQueueListenerCapture",
    "IotQueueListenerConfig",
    "OnDemandInputCapture",
    "OnDemandInputConfig",
    "StructuredFileCapture",
    "StructuredFileConfig",
    "VideoFileCapture",
    "VideoFileConfig",
    "VideoStreamCapture",
    "VideoStreamConfig",
    "VoidCapture",
    "VoidConfig",
]
