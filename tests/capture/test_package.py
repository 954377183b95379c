"""The capture package as the node sees it: exports, TYPE names, config validation."""

from __future__ import annotations

import subprocess
import sys

import pytest

import meshops.capture as capture_pkg
from meshops.capture import (
    CaptureConfig,
    DataCapture,
    IotQueueListenerCapture,
    OnDemandInputCapture,
    StructuredFileCapture,
    VideoFileCapture,
    VideoStreamCapture,
    VoidCapture,
)
from meshops.errors import ConfigError

from .conftest import make_config

TYPES = {
    "Void": VoidCapture,
    "VideoFile": VideoFileCapture,
    "VideoStream": VideoStreamCapture,
    "OnDemandInput": OnDemandInputCapture,
    "IotQueueListener": IotQueueListenerCapture,
    "StructuredFile": StructuredFileCapture,
}
MINIMAL = {  # the least each type needs to validate
    "Void": {},
    "VideoFile": {"URL": "clip.avi"},
    "VideoStream": {"URL": "rtsp://camera/1"},
    "OnDemandInput": {},
    "IotQueueListener": {"URL": "mqtt://broker/topic"},
    "StructuredFile": {"URL": "rows.csv"},
}


def test_every_name_in_all_is_exported() -> None:
    for name in capture_pkg.__all__:
        assert hasattr(capture_pkg, name), name


@pytest.mark.parametrize("type_name", sorted(TYPES))
def test_types_and_configs(type_name: str) -> None:
    cls = TYPES[type_name]
    assert issubclass(cls, DataCapture) and cls.TYPE == type_name
    assert issubclass(cls.CONFIG, CaptureConfig) and cls.CONFIG is not CaptureConfig
    assert cls.__doc__ and cls.CONFIG.__doc__
    schema = cls.CONFIG.model_json_schema(by_alias=True)
    assert "CAP_RESOLUTION" in schema["properties"]
    config = make_config(cls, **MINIMAL[type_name])
    assert config.wire()["TYPE"] == type_name


@pytest.mark.parametrize("type_name", sorted(TYPES))
@pytest.mark.parametrize("bad", [0, -1, "fast"])
def test_cap_resolution_must_be_a_positive_number(type_name: str, bad: object) -> None:
    with pytest.raises(ConfigError, match="CAP_RESOLUTION"):
        make_config(TYPES[type_name], **MINIMAL[type_name], CAP_RESOLUTION=bad)


@pytest.mark.parametrize(
    ("cls", "wire", "key"),
    [
        (VideoFileCapture, {}, "URL"),
        (VideoFileCapture, {"URL": "a.avi", "LOOP": "perhaps"}, "LOOP"),
        (VideoStreamCapture, {}, "URL"),
        (VideoStreamCapture, {"URL": -1}, "URL"),
        (VideoStreamCapture, {"URL": "rtsp://c", "READ_TIMEOUT": 0}, "READ_TIMEOUT"),
        (OnDemandInputCapture, {"MAX_DEQUE_LEN": 0}, "MAX_DEQUE_LEN"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(
    cls: type[DataCapture], wire: dict, key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        make_config(cls, **wire)


def test_per_type_defaults_follow_the_reference() -> None:
    assert make_config(OnDemandInputCapture).cap_resolution == 10
    iot = make_config(IotQueueListenerCapture, **MINIMAL["IotQueueListener"])
    assert (iot.cap_resolution, iot.max_deque_len) == (50, 1000)
    assert make_config(VideoStreamCapture, URL="rtsp://c").live_feed is True
    assert make_config(VoidCapture).cap_resolution == 1


def test_importing_the_package_does_not_need_opencv() -> None:
    code = "import sys, meshops.capture; sys.exit('cv2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
