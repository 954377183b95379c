"""JSON lines over a worker's stdin/stdout, every read and write bounded by a deadline.

The node must never block on a worker: a worker stuck in user code, dead, or spewing
output has to cost the caller at most its deadline. So both pipe ends are non-blocking and
waited on with ``poll`` (no ``select`` 1024-descriptor ceiling), and a line longer than the
cap is an error rather than a growing buffer.
"""

from __future__ import annotations

import os
import select
import time

__all__ = ["ChannelClosed", "ChannelError", "ChannelOverflow", "ChannelTimeout", "LineChannel"]

_CHUNK = 1 << 16


class ChannelError(Exception):
    """Base of the channel's failures (internal to the sandbox; never raised to callers)."""


class ChannelClosed(ChannelError):
    """The worker closed its end: it exited or was killed."""


class ChannelTimeout(ChannelError):
    """The deadline passed before the line was written or read."""


class ChannelOverflow(ChannelError):
    """The worker sent a line longer than the cap."""


class LineChannel:
    """Newline-framed messages to ``write_fd`` and from ``read_fd`` (the worker's pipes)."""

    def __init__(self, write_fd: int, read_fd: int, *, max_line_bytes: int) -> None:
        self._write_fd = write_fd
        self._read_fd = read_fd
        self._max = max_line_bytes
        self._buffer = bytearray()
        os.set_blocking(write_fd, False)
        os.set_blocking(read_fd, False)

    def send(self, line: bytes, deadline: float) -> None:
        """Write all of ``line`` (which ends with a newline) before ``deadline``."""
        view = memoryview(line)
        while view:
            try:
                written = os.write(self._write_fd, view)
            except BlockingIOError:
                self._wait(self._write_fd, select.POLLOUT, deadline)
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ChannelClosed("the worker closed its input") from exc
            view = view[written:]

    def recv(self, deadline: float) -> bytes:
        """The next line (without its newline), read before ``deadline``."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self._max:
                raise ChannelOverflow(f"a worker message exceeds {self._max} bytes")
            self._wait(self._read_fd, select.POLLIN, deadline)
            try:
                chunk = os.read(self._read_fd, _CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                raise ChannelClosed("the worker closed its output")
            self._buffer += chunk

    @staticmethod
    def _wait(fd: int, events: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, events)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChannelTimeout("deadline passed")
        if not poller.poll(max(1, int(remaining * 1000))):
            raise ChannelTimeout("deadline passed")
