"""Built-in models of the ``python`` backend: detectors that ship inside OpenCV.

Each factory is ``factory(files, options) -> model`` with ``model.predict(frames)`` giving
``{"BOXES": [[x, y, w, h], ...], "COUNT": n}`` per frame (BGR, BGRA or grayscale arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshops.errors import ServingError
from meshops.serving.zoo import haar_face_cascade

__all__ = ["aruco_markers", "haar_face"]


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ServingError("this model needs OpenCV: pip install 'meshops[vision]'") from exc
    return cv2


def _gray(cv2: Any, image: Any) -> Any:
    if getattr(image, "ndim", 0) == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(image, code)
    if getattr(image, "ndim", 0) != 2:
        raise ServingError(f"expected an image array, got {type(image).__name__}")
    return image


class _Detector:
    def __init__(self, cv2: Any, detect: Any) -> None:
        self._cv2 = cv2
        self._detect = detect

    def predict(self, inputs: list[Any]) -> list[Any]:
        results = []
        for image in inputs:
            boxes = [list(map(int, box)) for box in self._detect(_gray(self._cv2, image))]
            results.append({"BOXES": boxes, "COUNT": len(boxes)})
        return results


def haar_face(files: Mapping[str, Path], options: Mapping[str, Any]) -> _Detector:
    """OpenCV's frontal-face Haar cascade (or ``options["cascade"]``, an XML file)."""
    cv2 = _cv2()
    if not hasattr(cv2, "CascadeClassifier"):
        raise ServingError(
            f"haar_face: this OpenCV ({cv2.__version__}) has no Haar cascades "
            "(cv2.CascadeClassifier); install an OpenCV 4.x build (meshops[vision]) or use "
            "the aruco_4x4 model"
        )
    path = options.get("cascade") or haar_face_cascade()
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise ServingError(f"haar_face: cannot load the cascade {path}")
    scale = float(options.get("scale_factor", 1.1))
    neighbors = int(options.get("min_neighbors", 5))
    size = int(options.get("min_size", 24))
    if not 1.0 < scale <= 2.0 or not 0 <= neighbors <= 50 or not 1 <= size <= 4096:
        raise ServingError(
            "haar_face: SCALE_FACTOR must be in (1, 2], MIN_NEIGHBORS in 0..50, "
            f"MIN_SIZE in 1..4096 (got {scale}, {neighbors}, {size})"
        )

    def detect(gray: Any) -> Any:
        return classifier.detectMultiScale(
            gray, scaleFactor=scale, minNeighbors=neighbors, minSize=(size, size)
        )

    return _Detector(cv2, detect)


def aruco_markers(files: Mapping[str, Path], options: Mapping[str, Any]) -> _Detector:
    """OpenCV's ArUco detector, dictionary ``DICT_4X4_50``."""
    cv2 = _cv2()
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    detector = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())

    def detect(gray: Any) -> Any:
        corners, _ids, _rejected = detector.detectMarkers(gray)
        return [cv2.boundingRect(c.astype("float32")) for c in corners]

    return _Detector(cv2, detect)
