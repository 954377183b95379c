"""FACE_DETECT_01 as a plain class: detections, payloads, alerts, config errors."""

from __future__ import annotations

import os
from typing import Any

import cv2  # noqa: E402 - the test extra installs meshops[vision]
import matplotlib
import numpy as np  # noqa: E402
import pytest

from meshops.capture.base import CaptureItem
from meshops.errors import PluginError
from meshops.plugins.base import PluginInputs
from meshops.plugins.face_detect import FaceDetectPlugin
from tests.plugins.helpers import started


def make(**config: Any) -> tuple[FaceDetectPlugin, list[dict[str, Any]]]:
    return started(FaceDetectPlugin, **config)


def frame_with_markers(*ids: int) -> Any:
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    frame = np.full((240, 480, 3), 255, np.uint8)
    for i, marker in enumerate(ids):
        x = 20 + i * 150
        frame[60:160, x : x + 100] = cv2.aruco.generateImageMarker(dictionary, marker, 100)[
            ..., None
        ]
    return frame


def test_aruco_counts_boxes_and_alerts_per_frame() -> None:
    plugin, sent = make(DETECTOR="aruco", ALERT_AT=2)
    items = (
        CaptureItem(image=frame_with_markers(1), metadata={"frame_current": 1}),
        CaptureItem(image=frame_with_markers(1, 2, 3), metadata={"frame_current": 2}),
        CaptureItem(image=np.zeros((240, 480, 3), np.uint8), metadata={"frame_current": 3}),
        CaptureItem(data={"not": "a frame"}),
    )
    assert plugin.process(PluginInputs(items=items)) is None  # one payload per frame instead
    assert [(p["FRAME"], p["COUNT"], p["ALERT"]) for p in sent] == [
        (1, 1, False),
        (2, 3, True),
        (3, 0, False),
    ]
    assert all(p["DETECTOR"] == "aruco" for p in sent)
    x, y, w, h = sent[0]["BOXES"][0]
    assert abs(x - 20) <= 2 and abs(y - 60) <= 2 and abs(w - 100) <= 3 and abs(h - 100) <= 3
    assert plugin.frames == 3 and plugin.alerts == 1


def test_grayscale_frames_work_too() -> None:
    plugin, _ = make(DETECTOR="aruco")
    gray = cv2.cvtColor(frame_with_markers(4, 5), cv2.COLOR_BGR2GRAY)
    assert len(plugin.detect(gray)) == 2


def portrait() -> Any:
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    image = cv2.imread(path)
    assert image is not None, path
    return image


def test_haar_finds_the_real_face_and_nothing_in_a_blank_frame() -> None:
    plugin, sent = make()
    face = portrait()
    blank = np.zeros((240, 320, 3), np.uint8)
    plugin.process(PluginInputs(items=(CaptureItem(image=face), CaptureItem(image=blank))))
    assert [(p["COUNT"], p["ALERT"], p["DETECTOR"]) for p in sent] == [
        (1, True, "haar_face"),
        (0, False, "haar_face"),
    ]
    x, y, w, h = sent[0]["BOXES"][0]  # her face, in the upper middle of the portrait
    assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and w > 150
    assert sent[1]["BOXES"] == []


def test_an_opencv_without_haar_cascades_gets_a_clear_error(monkeypatch: Any) -> None:
    monkeypatch.delattr(cv2, "CascadeClassifier")  # as in OpenCV 5 builds
    with pytest.raises(PluginError, match=r"no Haar cascades.*DETECTOR: aruco"):
        make()


def test_bad_cascade_file_is_named(tmp_path: Any) -> None:
    with pytest.raises(PluginError, match="cannot load the cascade"):
        make(CASCADE=str(tmp_path / "missing.xml"))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"SCALE_FACTOR": 1.0}, "SCALE_FACTOR"),
        ({"MIN_NEIGHBORS": -1}, "MIN_NEIGHBORS"),
        ({"ALERT_AT": 0}, "ALERT_AT"),
        ({"DETECTOR": "yolo"}, "DETECTOR"),
    ],
)
def test_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(PluginError, match=field):
        FaceDetectPlugin.validate_config(config)


def test_defaults() -> None:
    config = FaceDetectPlugin.validate_config({})
    assert (config.detector, config.scale_factor, config.min_neighbors, config.alert_at) == (
        "haar_face",
        1.1,
        5,
        1,
    )
