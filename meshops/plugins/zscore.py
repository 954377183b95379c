"""``ZSCORE_ALERT_01``: rolling z-score anomaly alerts over a numeric field.

Each captured item's ``FIELD`` (default ``VALUE``; a dotted path such as ``SENSOR.TEMP``
reaches into nested objects; a bare number is used as it is) is compared with the mean and
standard deviation of the last ``WINDOW`` normal values. When ``|z| > THRESHOLD`` (and at
least ``MIN_SAMPLES`` values are known) the plugin sends an alert payload::

    {"ALERT": true, "VALUE": 9.1, "ZSCORE": 7.4, "MEAN": 0.1, "STD": 1.2, "SEEN": 120,
     "DATA": {...the item...}}

Alerted values are kept out of the window, so a burst of spikes does not teach the window
that spikes are normal. Every ``SUMMARY_EVERY`` values (0: never) it also sends a summary:
``{"SUMMARY": true, "SEEN", "ALERTS", "SKIPPED", "MEAN", "STD"}``. Items without a numeric
``FIELD`` are counted in ``SKIPPED``. Nothing else is sent: normal values are silent.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["ZScoreConfig", "ZScorePlugin", "field_value"]


class ZScoreConfig(PluginConfig):
    process_delay: float = Field(default=0.0, ge=0)
    field: str = Field(
        default="VALUE", min_length=1, max_length=200, description="Numeric field (dotted path)."
    )
    window: int = Field(default=50, ge=2, le=100_000, description="Values in the rolling window.")
    threshold: float = Field(default=3.0, gt=0, description="Alert when |z| exceeds this.")
    min_samples: int = Field(
        default=10, ge=2, description="Values needed in the window before any alert."
    )
    min_std: float = Field(
        default=1e-6, gt=0, description="Floor of the standard deviation (flat signals)."
    )
    summary_every: int = Field(
        default=100, ge=0, description="Send a summary every N values; 0 never."
    )


def field_value(data: Any, path: str) -> float | None:
    """The number at ``path`` (dotted, case-sensitive) in ``data``; None if there is none."""
    value = data
    if not isinstance(data, int | float) or isinstance(data, bool):
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class ZScorePlugin(BusinessPlugin):
    SIGNATURE = "ZSCORE_ALERT_01"
    CONFIG = ZScoreConfig
    config: ZScoreConfig

    def on_init(self) -> None:
        self.window: deque[float] = deque(maxlen=self.config.window)
        self.seen = 0
        self.alerts = 0
        self.skipped = 0

    def on_config(self, config: PluginConfig) -> None:
        super().on_config(config)
        self.window = deque(self.window, maxlen=self.config.window)

    def stats(self) -> tuple[float, float]:
        """Mean and (population) standard deviation of the window, std floored at MIN_STD."""
        n = len(self.window)
        if n == 0:
            return 0.0, self.config.min_std
        mean = sum(self.window) / n
        var = sum((x - mean) ** 2 for x in self.window) / n
        return mean, max(math.sqrt(var), self.config.min_std)

    def check(self, value: float) -> float | None:
        """The z-score of ``value`` if it is an anomaly (window unchanged), else None (the
        value joins the window)."""
        if len(self.window) >= self.config.min_samples:
            mean, std = self.stats()
            z = (value - mean) / std
            if abs(z) > self.config.threshold:
                return z
        self.window.append(value)
        return None

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        for data in inputs.struct_data:
            value = field_value(data, self.config.field)
            if value is None:
                self.skipped += 1
                continue
            self.seen += 1
            mean, std = self.stats()
            z = self.check(value)
            if z is not None:
                self.alerts += 1
                self.add_payload(
                    ALERT=True,
                    VALUE=value,
                    ZSCORE=round(z, 3),
                    MEAN=round(mean, 6),
                    STD=round(std, 6),
                    SEEN=self.seen,
                    DATA=data,
                )
            if self.config.summary_every and self.seen % self.config.summary_every == 0:
                mean, std = self.stats()
                self.add_payload(
                    SUMMARY=True,
                    SEEN=self.seen,
                    ALERTS=self.alerts,
                    SKIPPED=self.skipped,
                    MEAN=round(mean, 6),
                    STD=round(std, 6),
                )
        return None
