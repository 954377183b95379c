"""VideoStream against a local HTTP MJPEG server: live feed, in-order reads, reconnection."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import cv2  # noqa: E402 - meshops[vision] is a test dependency
import pytest

from meshops.capture import VideoStreamCapture
from meshops.capture._opencv import redact_url
from meshops.capture.video_stream import VideoStreamConfig

from .conftest import StartCapture, make_config
from .helpers import FRAME_H, FRAME_W, counter_frame, frame_counter


class MjpegServer:
    """Serves ``multipart/x-mixed-replace`` JPEG frames numbered across connections.

    ``frames_per_connection`` closes each connection after that many frames, the way a
    camera drops a client, so the capture has to reconnect.
    """

    def __init__(self, fps: float = 50.0, frames_per_connection: int | None = None) -> None:
        self.fps = fps
        self.frames_per_connection = frames_per_connection
        self.connections = 0
        self.sent = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="test-mjpeg-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _next_number(self) -> int:
        with self._lock:
            self.sent += 1
            return self.sent - 1

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                try:
                    while not server.stopping.is_set():
                        if server.frames_per_connection and sent >= server.frames_per_connection:
                            return
                        ok, jpeg = cv2.imencode(".jpg", counter_frame(server._next_number()))
                        body = jpeg.tobytes()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(body)}\r\n\r\n".encode()
                            + body
                            + b"\r\n"
                        )
                        sent += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    server = MjpegServer().start()
    try:
        yield server
    finally:
        server.stop()


def counters(items: list) -> list[int]:
    return [frame_counter(item.image) for item in items]


def test_frames_arrive_with_stream_metadata(
    start_capture: StartCapture, mjpeg: MjpegServer
) -> None:
    capture, rec = start_capture(VideoStreamCapture, URL=mjpeg.url, CAP_RESOLUTION=20)
    assert rec.wait_items(3)
    capture.stop()
    item = rec.items[0]
    assert item.image.shape == (FRAME_H, FRAME_W, 3)
    assert item.metadata["url"] == mjpeg.url
    assert (item.metadata["frame_w"], item.metadata["frame_h"]) == (FRAME_W, FRAME_H)
    assert item.metadata["frame_count"] == 0
    assert [i.metadata["frame_current"] for i in rec.items[:3]] == [1, 2, 3]
    assert rec.errors == []


def test_live_feed_skips_stale_frames(start_capture: StartCapture, mjpeg: MjpegServer) -> None:
    capture, rec = start_capture(VideoStreamCapture, URL=mjpeg.url, CAP_RESOLUTION=4)
    assert rec.wait_items(4)
    capture.stop()
    seen = counters(rec.items)
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert all(gap >= 1 for gap in gaps), seen  # never an old frame twice
    assert sum(gaps) / len(gaps) > 3, seen  # 50 fps served, 4 per second taken
    assert rec.items[-1].metadata["dropped"] > 0


def test_without_live_feed_every_frame_comes_in_order(
    start_capture: StartCapture, mjpeg: MjpegServer
) -> None:
    capture, rec = start_capture(
        VideoStreamCapture, URL=mjpeg.url, LIVE_FEED=False, CAP_RESOLUTION=10
    )
    assert rec.wait_items(5)
    capture.stop()
    seen = counters(rec.items)
    assert seen == list(range(seen[0], seen[0] + len(seen)))


class FastRetryStream(VideoStreamCapture):
    RETRY_MIN_S = 0.1


@pytest.mark.parametrize("live_feed", [True, False])
def test_reconnects_when_the_server_drops_the_connection(
    start_capture: StartCapture, live_feed: bool
) -> None:
    server = MjpegServer(frames_per_connection=5).start()
    try:
        capture, rec = start_capture(
            FastRetryStream, URL=server.url, LIVE_FEED=live_feed, CAP_RESOLUTION=50
        )
        assert rec.wait_items(12, timeout=8), rec.errors
        capture.stop()
    finally:
        server.stop()
    assert server.connections >= 2
    assert rec.errors and all(server.url in message for message in rec.errors)
    assert not capture.finished.is_set()


def test_unreachable_stream_is_reported_without_the_password(
    start_capture: StartCapture,
) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://viewer:s3cret@127.0.0.1:{port}/stream.mjpg"
    capture, rec = start_capture(VideoStreamCapture, URL=url, RECONNECTABLE=False, OPEN_TIMEOUT=2)
    assert capture.finished.wait(5)
    assert len(rec.errors) == 1
    assert f"127.0.0.1:{port}" in rec.errors[0]
    assert "s3cret" not in rec.errors[0]


def test_a_numeric_url_is_a_device_index() -> None:
    assert make_config(VideoStreamCapture, URL="0").url == 0
    assert make_config(VideoStreamCapture, URL=2).url == 2
    config = make_config(VideoStreamCapture, URL="rtsp://cam/1")
    assert isinstance(config, VideoStreamConfig)
    assert config.live_feed is True


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:pa@ss@10.0.0.1:554/live", "rtsp://admin:***@10.0.0.1:554/live"),
        ("http://viewer:x@[::1]:80/s.mjpg", "http://viewer:***@[::1]:80/s.mjpg"),
        ("rtsp://user@cam/1", "rtsp://user@cam/1"),
        (3, "3"),
    ],
)
def test_passwords_are_redacted_from_urls(url: str | int, shown: str) -> None:
    assert redact_url(url) == shown
