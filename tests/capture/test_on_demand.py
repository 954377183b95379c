"""OnDemandInput: data fed by command comes out in order; waiting is stoppable."""

from __future__ import annotations

import base64
import time

import pytest

from meshops.capture import OnDemandInputCapture, VoidCapture
from meshops.errors import PluginError

from .conftest import StartCapture, make_config
from .helpers import Recorder, counter_frame, frame_counter


def test_fed_items_come_out_in_order(start_capture: StartCapture) -> None:
    capture, rec = start_capture(OnDemandInputCapture, CAP_RESOLUTION=100)
    for i in range(5):
        capture.feed({"STRUCT_DATA": {"n": i}})
    assert rec.wait_items(5)
    assert rec.data == [{"n": i} for i in range(5)]
    assert all(item.image is None for item in rec.items)


def test_other_payloads_are_delivered_as_they_came(start_capture: StartCapture) -> None:
    capture, rec = start_capture(OnDemandInputCapture, URL=0, CAP_RESOLUTION=100)
    capture.feed([1, 2, 3])
    capture.feed({"VALUE": 7})
    assert rec.wait_items(2)
    assert rec.data == [[1, 2, 3], {"VALUE": 7}]


def test_a_base64_img_becomes_an_image(start_capture: StartCapture) -> None:
    import cv2  # meshops[vision] is a test dependency

    ok, png = cv2.imencode(".png", counter_frame(1234))
    assert ok
    capture, rec = start_capture(OnDemandInputCapture, CAP_RESOLUTION=100)
    capture.feed({"IMG": base64.b64encode(png.tobytes()).decode()})
    assert rec.wait_items(1)
    assert frame_counter(rec.items[0].image) == 1234
    assert rec.items[0].data is None


def test_an_undecodable_img_is_refused_at_feed(start_capture: StartCapture) -> None:
    capture, rec = start_capture(OnDemandInputCapture)
    with pytest.raises(PluginError, match="IMG"):
        capture.feed({"IMG": "not base64!"})
    with pytest.raises(PluginError, match="IMG"):
        capture.feed({"IMG": base64.b64encode(b"not an image").decode()})


def test_waits_without_finishing_and_stops_promptly(start_capture: StartCapture) -> None:
    capture, rec = start_capture(OnDemandInputCapture)
    time.sleep(0.5)
    assert rec.items == [] and not capture.finished.is_set() and capture.running
    started = time.monotonic()
    capture.stop()
    assert time.monotonic() - started < 1.0
    assert not capture.running


def test_a_full_queue_drops_the_oldest() -> None:
    rec = Recorder()
    config = make_config(OnDemandInputCapture, MAX_DEQUE_LEN=3, CAP_RESOLUTION=100)
    capture = OnDemandInputCapture(config, rec.sink, on_error=rec.error)
    for i in range(5):  # fed before the start: kept, but only room for 3
        capture.feed({"STRUCT_DATA": i})
    assert capture.dropped == 2
    capture.start()
    try:
        assert rec.wait_items(3)
    finally:
        capture.stop()
    assert rec.data == [2, 3, 4]


def test_live_feed_takes_only_the_newest(start_capture: StartCapture) -> None:
    capture, rec = start_capture(OnDemandInputCapture, LIVE_FEED=True, CAP_RESOLUTION=2)
    for i in range(5):
        capture.feed({"STRUCT_DATA": i})
    assert rec.wait_items(1)
    time.sleep(0.7)
    assert rec.data[-1] == 4
    assert len(rec.data) <= 2


def test_other_capture_types_refuse_data_by_command(start_capture: StartCapture) -> None:
    capture, _ = start_capture(VoidCapture)
    with pytest.raises(PluginError, match="does not take data"):
        capture.feed({"STRUCT_DATA": 1})
