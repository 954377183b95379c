"""``FACE_DETECT_01``: an object detector over video frames, with counts and alerts.

For every frame its pipeline captured, the plugin sends one payload::

    {"COUNT": 2, "BOXES": [[x, y, w, h], ...], "ALERT": false, "FRAME": 17, "DETECTOR": "..."}

``ALERT`` is true when ``COUNT >= ALERT_AT``. Two real detectors that ship inside OpenCV are
offered (``DETECTOR``), neither of which needs a model download:

- ``haar_face`` (default): OpenCV's bundled frontal-face Haar cascade
  (``cv2.data.haarcascades + "haarcascade_frontalface_default.xml"``, or ``CASCADE``), tuned
  with ``SCALE_FACTOR`` and ``MIN_NEIGHBORS``. It needs an OpenCV build that has
  ``cv2.CascadeClassifier`` and ships the cascades: the 4.x wheels do (``meshops[vision]``
  pins them), OpenCV 5 does not. On such a build the instance reports a clear error instead
  of detecting nothing. ``examples/video_analytics`` runs it on a real portrait.
- ``aruco``: OpenCV's ArUco marker detector (dictionary ``DICT_4X4_50``), in every OpenCV
  since 4.7.

OpenCV is imported when the instance starts, so the plugin loads (and validates configs)
where OpenCV is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["FaceDetectConfig", "FaceDetectPlugin", "FRONTAL_FACE_CASCADE"]

FRONTAL_FACE_CASCADE = "haarcascade_frontalface_default.xml"


class FaceDetectConfig(PluginConfig):
    process_delay: float = Field(default=0.0, ge=0)
    detector: Literal["haar_face", "aruco"] = Field(
        default="haar_face", description="haar_face (OpenCV's Haar cascade) or aruco (markers)."
    )
    scale_factor: float = Field(
        default=1.1, gt=1.0, le=2.0, description="Haar: image pyramid step between scales."
    )
    min_neighbors: int = Field(
        default=5, ge=0, le=50, description="Haar: overlapping hits needed to keep a detection."
    )
    min_size: int = Field(default=24, ge=1, le=4096, description="Haar: smallest face, pixels.")
    cascade: str | None = Field(
        default=None, description="Haar: cascade XML file; default OpenCV's frontal face one."
    )
    alert_at: int = Field(default=1, ge=1, description="ALERT when COUNT reaches this many.")


class FaceDetectPlugin(BusinessPlugin):
    SIGNATURE = "FACE_DETECT_01"
    CONFIG = FaceDetectConfig
    config: FaceDetectConfig

    def on_init(self) -> None:
        self.frames = 0
        self.alerts = 0
        self._detect: Any = None
        self._detect = self._build(self.config)

    def on_config(self, config: PluginConfig) -> None:
        super().on_config(config)
        self._detect = self._build(self.config)

    @staticmethod
    def _build(config: FaceDetectConfig) -> Any:
        try:
            import cv2
        except ImportError as exc:
            raise PluginError("FACE_DETECT_01 needs OpenCV: pip install 'meshops[vision]'") from exc
        if config.detector == "aruco":
            dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
            detector = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())

            def aruco(gray: Any) -> list[list[int]]:
                corners, _ids, _rejected = detector.detectMarkers(gray)
                return [list(map(int, cv2.boundingRect(c.astype("float32")))) for c in corners]

            return aruco
        if not hasattr(cv2, "CascadeClassifier"):
            raise PluginError(
                f"DETECTOR haar_face: this OpenCV ({cv2.__version__}) has no Haar cascades "
                "(cv2.CascadeClassifier); use an OpenCV 4.x build, or DETECTOR: aruco"
            )
        path = config.cascade or str(cv2.data.haarcascades) + FRONTAL_FACE_CASCADE
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise PluginError(f"DETECTOR haar_face: cannot load the cascade {path}")
        size = (config.min_size, config.min_size)

        def haar(gray: Any) -> list[list[int]]:
            found = classifier.detectMultiScale(
                gray,
                scaleFactor=config.scale_factor,
                minNeighbors=config.min_neighbors,
                minSize=size,
            )
            return [list(map(int, box)) for box in found]

        return haar

    def detect(self, image: Any) -> list[list[int]]:
        """Boxes ``[x, y, w, h]`` found in one frame (BGR, BGRA or grayscale array)."""
        if self._detect is None:
            raise PluginError(f"{self.SIGNATURE}: the detector did not start (see its error)")
        import cv2

        gray = image
        if getattr(image, "ndim", 0) == 3:
            code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            gray = cv2.cvtColor(image, code)
        return self._detect(gray)

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        for item in inputs.items:
            if item.image is None:
                continue
            boxes = self.detect(item.image)
            self.frames += 1
            alert = len(boxes) >= self.config.alert_at
            self.alerts += alert
            self.add_payload(
                COUNT=len(boxes),
                BOXES=boxes,
                ALERT=alert,
                FRAME=item.metadata.get("frame_current", self.frames),
                DETECTOR=self.config.detector,
            )
        return None
