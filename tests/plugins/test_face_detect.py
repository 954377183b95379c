"""FACE_DETECT_01 on the detections of the real built-in models (run in-process here; a node
runs them in its model server, see tests/serving)."""

from __future__ import annotations

import os
from typing import Any

import cv2
import matplotlib
import numpy as np
import pytest

from meshops.capture.base import CaptureItem
from meshops.errors import PluginError, ServingError
from meshops.plugins.base import PluginInputs
from meshops.plugins.face_detect import FaceDetectPlugin
from meshops.serving.builtin import aruco_markers, haar_face
from tests.plugins.helpers import started


def portrait() -> Any:
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    image = cv2.imread(path)
    assert image is not None, path
    return image


def frame_with_markers(*ids: int) -> Any:
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    frame = np.full((240, 480, 3), 255, np.uint8)
    for i, marker in enumerate(ids):
        x = 20 + i * 150
        frame[60:160, x : x + 100] = cv2.aruco.generateImageMarker(dictionary, marker, 100)[
            ..., None
        ]
    return frame


def served(model: Any, items: tuple[CaptureItem, ...]) -> PluginInputs:
    """What the node's instance runner hands process(): items and one inference each."""
    inputs = [item.image if item.image is not None else item.data for item in items]
    return PluginInputs(items=items, inferences=tuple(model.predict(inputs)))


def test_haar_finds_the_real_face_and_nothing_in_a_blank_frame() -> None:
    plugin, sent = started(FaceDetectPlugin)
    items = (CaptureItem(image=portrait()), CaptureItem(image=np.zeros((240, 320, 3), np.uint8)))
    plugin.process(served(haar_face({}, {}), items))
    assert [(p["COUNT"], p["ALERT"], p["DETECTOR"]) for p in sent] == [
        (1, True, "haar_face"),
        (0, False, "haar_face"),
    ]
    x, y, w, h = sent[0]["BOXES"][0]  # her face, in the upper middle of the portrait
    assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and w > 150
    assert sent[1]["BOXES"] == []


def test_markers_count_boxes_and_alerts_per_frame() -> None:
    plugin, sent = started(FaceDetectPlugin, AI_ENGINE="aruco_4x4", ALERT_AT=2)
    items = (
        CaptureItem(image=frame_with_markers(1), metadata={"frame_current": 1}),
        CaptureItem(image=frame_with_markers(1, 2, 3), metadata={"frame_current": 2}),
        CaptureItem(image=np.zeros((240, 480, 3), np.uint8), metadata={"frame_current": 3}),
    )
    assert plugin.process(served(aruco_markers({}, {}), items)) is None  # payloads instead
    assert [(p["FRAME"], p["COUNT"], p["ALERT"]) for p in sent] == [
        (1, 1, False),
        (2, 3, True),
        (3, 0, False),
    ]
    x, y, w, h = sent[0]["BOXES"][0]
    assert abs(x - 20) <= 2 and abs(y - 60) <= 2 and abs(w - 100) <= 3 and abs(h - 100) <= 3
    assert plugin.frames == 3 and plugin.alerts == 1


def test_items_without_a_frame_are_skipped_and_grayscale_works() -> None:
    plugin, sent = started(FaceDetectPlugin, AI_ENGINE="aruco_4x4")
    gray = cv2.cvtColor(frame_with_markers(4, 5), cv2.COLOR_BGR2GRAY)
    items = (CaptureItem(data={"not": "a frame"}), CaptureItem(image=gray))
    inputs = PluginInputs(items=items, inferences=({}, *aruco_markers({}, {}).predict([gray])))
    plugin.process(inputs)
    assert [p["COUNT"] for p in sent] == [2]


def test_frames_without_inferences_are_an_error_naming_ai_engine() -> None:
    plugin, _ = started(FaceDetectPlugin)
    with pytest.raises(PluginError, match="AI_ENGINE"):
        plugin.process(PluginInputs(items=(CaptureItem(image=portrait()),)))


def test_an_opencv_without_haar_cascades_gets_a_clear_error(monkeypatch: Any) -> None:
    monkeypatch.delattr(cv2, "CascadeClassifier")  # as in OpenCV 5 builds
    with pytest.raises(ServingError, match=r"no Haar cascades.*aruco_4x4"):
        haar_face({}, {})


def test_bad_cascade_file_and_settings_are_named(tmp_path: Any) -> None:
    with pytest.raises(ServingError, match="cannot load the cascade"):
        haar_face({}, {"cascade": str(tmp_path / "missing.xml")})
    with pytest.raises(ServingError, match="SCALE_FACTOR"):
        haar_face({}, {"scale_factor": 1.0})


def test_config_defaults_and_errors() -> None:
    config = FaceDetectPlugin.validate_config({})
    assert (config.ai_engine, config.alert_at, config.process_delay) == ("haar_face", 1, 0.0)
    with pytest.raises(PluginError, match="ALERT_AT"):
        FaceDetectPlugin.validate_config({"ALERT_AT": 0})
