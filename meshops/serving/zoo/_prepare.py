"""Run a chosen set of exports into one folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from meshops.errors import ServingError
from meshops.serving.zoo._digits import export_digits
from meshops.serving.zoo._efficientnet import export_efficientnet_lite0
from meshops.serving.zoo._files import ModelFiles
from meshops.serving.zoo._haar import export_haar_face
from meshops.serving.zoo._minilm import export_minilm

__all__ = ["EXPORTS", "prepare"]

log = logging.getLogger(__name__)

EXPORTS: dict[str, Callable[[Path], ModelFiles]] = {
    "efficientnet_lite0": export_efficientnet_lite0,
    "minilm": export_minilm,
    "digits": export_digits,
    "haar_face": export_haar_face,
}
"""Every model the zoo can prepare, by name."""


def prepare(names: Iterable[str], out_dir: Path) -> list[ModelFiles]:
    """Export each of ``names`` into ``out_dir``, in order; current exports are kept as is.

    Unknown names fail before anything is exported.
    """
    names = list(names)
    unknown = [n for n in names if n not in EXPORTS]
    if unknown:
        raise ServingError(f"unknown model(s) {unknown}; the zoo has {sorted(EXPORTS)}")
    prepared = []
    for name in names:
        started = time.perf_counter()
        prepared.append(EXPORTS[name](Path(out_dir)))
        log.info("model %s ready in %s (%.1f s)", name, out_dir, time.perf_counter() - started)
    return prepared
