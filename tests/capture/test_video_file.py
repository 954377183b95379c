"""VideoFile: frames of a local file, in order, finite or looping; bad paths reported."""

from __future__ import annotations

import time
from pathlib import Path

import cv2  # noqa: E402 - meshops[vision] is a test dependency
import pytest

from meshops.capture import VideoFileCapture

from .conftest import StartCapture
from .helpers import FRAME_H, FRAME_W, counter_frame, frame_counter, wait_until


def write_video(path: Path, frames: int, fps: float = 10.0) -> Path:
    """An MJPG .avi (readable by headless OpenCV) whose frame i carries the number i."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (FRAME_W, FRAME_H))
    assert writer.isOpened()
    try:
        for i in range(frames):
            writer.write(counter_frame(i))
    finally:
        writer.release()
    return path


def test_frames_in_order_with_metadata_then_finished(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.avi", frames=5)
    capture, rec = start_capture(VideoFileCapture, URL=str(video), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert [frame_counter(item.image) for item in rec.items] == [0, 1, 2, 3, 4]
    first = rec.items[0]
    assert first.image.shape == (FRAME_H, FRAME_W, 3)
    assert first.metadata["frame_current"] == 1
    assert first.metadata["fps"] == pytest.approx(10.0)
    assert first.metadata["frame_count"] == 5
    assert (first.metadata["frame_w"], first.metadata["frame_h"]) == (FRAME_W, FRAME_H)
    assert first.metadata["url"] == str(video)
    assert rec.errors == []
    assert wait_until(lambda: not capture.running, 2)


def test_loop_restarts_at_the_end(start_capture: StartCapture, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=3)
    capture, rec = start_capture(VideoFileCapture, URL=str(video), LOOP=True, CAP_RESOLUTION=100)
    assert rec.wait_items(8)
    capture.stop()
    counters = [frame_counter(item.image) for item in rec.items[:8]]
    assert counters == [0, 1, 2, 0, 1, 2, 0, 1]
    assert [item.metadata["loops"] for item in rec.items[:8]] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert not capture.finished.is_set()


def test_pacing_follows_cap_resolution(start_capture: StartCapture, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=50)
    capture, rec = start_capture(VideoFileCapture, URL=str(video), CAP_RESOLUTION=2)
    time.sleep(1.5)
    capture.stop()
    assert 2 <= len(rec.items) <= 5


def test_missing_file_is_reported_with_its_path(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.avi"
    capture, rec = start_capture(VideoFileCapture, URL=str(missing), RECONNECTABLE=False)
    assert rec.wait_errors(1)
    assert str(missing) in rec.errors[0]
    assert "not found" in rec.errors[0]
    assert capture.finished.wait(2)
    assert rec.items == []


def test_missing_file_keeps_retrying_and_stop_still_returns(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    capture, rec = start_capture(VideoFileCapture, URL=str(tmp_path / "nowhere.avi"))
    assert rec.wait_errors(2, timeout=5)  # the base retries while RECONNECTABLE
    started = time.monotonic()
    capture.stop()
    assert time.monotonic() - started < 1.5
    assert not capture.running


def test_unreadable_file_is_reported(start_capture: StartCapture, tmp_path: Path) -> None:
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 10)
    capture, rec = start_capture(VideoFileCapture, URL=str(junk), RECONNECTABLE=False)
    assert rec.wait_errors(1)
    assert str(junk) in rec.errors[0]
    assert "not a video" in rec.errors[0]


def test_reconnectable_reopens_after_an_error(start_capture: StartCapture, tmp_path: Path) -> None:
    video = tmp_path / "later.avi"
    capture, rec = start_capture(VideoFileCapture, URL=f"file://{video}", CAP_RESOLUTION=100)
    assert rec.wait_errors(1)
    write_video(tmp_path / "staging.avi", frames=3).rename(video)
    assert capture.finished.wait(5)
    assert [frame_counter(item.image) for item in rec.items] == [0, 1, 2]
