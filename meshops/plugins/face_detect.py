"""``FACE_DETECT_01``: counts and alerts from a detector model served by the node.

For every frame its pipeline captured, the plugin sends one payload::

    {"COUNT": 2, "BOXES": [[x, y, w, h], ...], "ALERT": false, "FRAME": 17, "DETECTOR": "..."}

``ALERT`` is true when ``COUNT >= ALERT_AT``. The detection itself runs in the node's model
server for ``AI_ENGINE`` (see ``meshops.serving``), shared with every other pipeline that
names the same model, and batched with them. Two detectors ship inside OpenCV and need no
download:

- ``haar_face`` (default): OpenCV's bundled frontal-face Haar cascade, tuned with
  ``AI_ENGINE_PARAMS``: ``SCALE_FACTOR`` (1.1), ``MIN_NEIGHBORS`` (5), ``MIN_SIZE`` (24) or
  another ``CASCADE`` XML file. It needs an OpenCV 4.x build (``meshops[vision]`` pins it;
  OpenCV 5 dropped the cascades, and the model server then reports that clearly).
  ``examples/video_analytics`` runs it on a real portrait.
- ``aruco_4x4``: OpenCV's ArUco marker detector (dictionary ``DICT_4X4_50``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["FaceDetectConfig", "FaceDetectPlugin"]


class FaceDetectConfig(PluginConfig):
    process_delay: float = Field(default=0.0, ge=0)
    ai_engine: str | None = Field(
        default="haar_face", description="The detector model: haar_face or aruco_4x4."
    )
    alert_at: int = Field(default=1, ge=1, description="ALERT when COUNT reaches this many.")


class FaceDetectPlugin(BusinessPlugin):
    SIGNATURE = "FACE_DETECT_01"
    CONFIG = FaceDetectConfig
    config: FaceDetectConfig

    def on_init(self) -> None:
        self.frames = 0
        self.alerts = 0

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        frames = [(item, i) for i, item in enumerate(inputs.items) if item.image is not None]
        if frames and len(inputs.inferences) != len(inputs.items):
            raise PluginError(
                f"{self.SIGNATURE}: no detections for the frames (is AI_ENGINE set, and "
                "does this node serve it?)"
            )
        for item, i in frames:
            detection = inputs.inferences[i]
            boxes = detection["BOXES"]
            self.frames += 1
            alert = len(boxes) >= self.config.alert_at
            self.alerts += alert
            self.add_payload(
                COUNT=len(boxes),
                BOXES=boxes,
                ALERT=alert,
                FRAME=item.metadata.get("frame_current", self.frames),
                DETECTOR=self.config.ai_engine,
            )
        return None
