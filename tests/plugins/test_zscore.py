"""ZSCORE_ALERT_01 as a plain class: spikes alert, normal values do not."""

from __future__ import annotations

import math
from typing import Any

import pytest

from meshops.capture.base import CaptureItem
from meshops.errors import PluginError
from meshops.plugins.base import PluginInputs
from meshops.plugins.zscore import ZScorePlugin, field_value
from tests.plugins.helpers import started


def make(**config: Any) -> tuple[ZScorePlugin, list[dict[str, Any]]]:
    return started(ZScorePlugin, **config)


def feed(plugin: ZScorePlugin, data: list[Any]) -> None:
    assert plugin.process(PluginInputs(items=tuple(CaptureItem(data=d) for d in data))) is None


def sine(n: int) -> float:
    return 20 + 2 * math.sin(n / 8)


def test_spikes_alert_and_normal_values_do_not() -> None:
    plugin, sent = make(WINDOW=40, THRESHOLD=4, SUMMARY_EVERY=0)
    spikes = {50: +12.0, 90: -12.0, 91: +12.0, 150: +9.0}
    readings = [{"VALUE": sine(n) + spikes.get(n, 0.0), "SEQ": n} for n in range(200)]
    feed(plugin, readings)
    assert [p["DATA"]["SEQ"] for p in sent] == [50, 90, 91, 150]
    assert all(p["ALERT"] is True and abs(p["ZSCORE"]) > 4 for p in sent)
    assert sent[1]["ZSCORE"] < 0 < sent[0]["ZSCORE"]
    assert sent[0]["VALUE"] == readings[50]["VALUE"]
    assert set(sent[0]) == {"ALERT", "VALUE", "ZSCORE", "MEAN", "STD", "SEEN", "DATA"}
    assert plugin.seen == 200 and plugin.alerts == 4
    assert max(plugin.window) < 25 and min(plugin.window) > 15  # spikes stay out of it


def test_no_alert_before_min_samples() -> None:
    plugin, sent = make(MIN_SAMPLES=10, SUMMARY_EVERY=0)
    feed(plugin, [{"VALUE": v} for v in [1, 1, 1, 100]])
    assert sent == []


def test_periodic_summary() -> None:
    plugin, sent = make(SUMMARY_EVERY=25)
    feed(plugin, [{"VALUE": sine(n)} for n in range(60)] + [{"OTHER": 1}, {"VALUE": "x"}])
    summaries = [p for p in sent if p.get("SUMMARY")]
    assert [s["SEEN"] for s in summaries] == [25, 50]
    assert summaries[-1]["ALERTS"] == 0 and 18 < summaries[-1]["MEAN"] < 22
    assert plugin.skipped == 2


def test_field_paths_and_bare_numbers() -> None:
    assert field_value({"A": {"B": 2}}, "A.B") == 2.0
    assert field_value({"VALUE": "3.5"}, "VALUE") == 3.5
    assert field_value(7, "VALUE") == 7.0
    assert field_value({"VALUE": True}, "VALUE") is None
    assert field_value({"VALUE": float("nan")}, "VALUE") is None
    assert field_value({"A": 1}, "A.B") is None
    plugin, sent = make(FIELD="S.T", MIN_SAMPLES=3, THRESHOLD=3, SUMMARY_EVERY=0)
    feed(plugin, [{"S": {"T": v}} for v in [10, 10.1, 9.9, 10, 10.2, 50]])
    assert [p["VALUE"] for p in sent] == [50.0]


def test_flat_signal_uses_min_std() -> None:
    plugin, sent = make(MIN_SAMPLES=5, SUMMARY_EVERY=0)
    feed(plugin, [5.0] * 10 + [5.0, 5.001])
    assert [p["VALUE"] for p in sent] == [5.001]  # z = 0.001 / 1e-6


@pytest.mark.parametrize(
    ("config", "field"),
    [({"WINDOW": 1}, "WINDOW"), ({"THRESHOLD": 0}, "THRESHOLD"), ({"FIELD": ""}, "FIELD")],
)
def test_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(PluginError, match=field):
        ZScorePlugin.validate_config(config)
