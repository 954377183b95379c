"""Transport tests must leave no thread running: checked after every test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _every_test_stops_its_threads(no_leaked_threads: None) -> None:
    """Every test here must leave no thread running (see ``no_leaked_threads``)."""
