"""Capture fixtures: a factory that starts captures and stops them all, and a thread-leak check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshops._validation import validate_wire
from meshops.capture.base import DataCapture
from meshops.errors import ConfigError

from .helpers import Recorder

StartCapture = Callable[..., tuple[DataCapture, Recorder]]


@pytest.fixture(autouse=True)
def _every_test_stops_its_threads(no_leaked_threads: None) -> None:
    """Every test here must leave no thread running (see ``no_leaked_threads``)."""


def make_config(cls: type[DataCapture], **wire: Any) -> Any:
    """``cls``'s config from wire keys, validated as the node does."""
    raw = {"NAME": "test", "TYPE": cls.TYPE, **wire}
    return validate_wire(cls.CONFIG, raw, what="pipeline 'test'", error=ConfigError)


@pytest.fixture
def start_capture() -> Iterator[StartCapture]:
    """``start_capture(cls, KEY=value, ...)``: a started capture and its recorder.

    Every capture started is stopped afterwards, and must actually stop.
    """
    started: list[DataCapture] = []

    def start(cls: type[DataCapture], **wire: Any) -> tuple[DataCapture, Recorder]:
        recorder = Recorder()
        capture = cls(make_config(cls, **wire), recorder.sink, on_error=recorder.error)
        started.append(capture)
        capture.start()
        return capture, recorder

    yield start
    for capture in started:
        capture.stop(timeout=5)
    assert not any(capture.running for capture in started), "a capture did not stop"
