"""A python-backend model that leaks memory on every call (for the MAX_RSS_MB guard test).

The model server imports it by name (``tests.serving.leaky:make``): tests run from the
repository root, which the server process has on its path."""

from __future__ import annotations

from typing import Any

import numpy as np

_kept: list[np.ndarray] = []


class Leaky:
    def predict(self, inputs: list[Any]) -> list[Any]:
        _kept.append(np.ones(64 * 2**20, np.uint8))  # 64 MiB, touched, never freed
        return [{"HELD_MIB": 64 * len(_kept)} for _ in inputs]


def make(files: Any, options: Any) -> Leaky:
    return Leaky()


class Stuck:
    """Hangs (as a deadlocked native call would) on the input "hang"."""

    def predict(self, inputs: list[Any]) -> list[Any]:
        if "hang" in inputs:
            import time

            time.sleep(3600)
        return [{"OK": True} for _ in inputs]


def stuck(files: Any, options: Any) -> Stuck:
    return Stuck()
