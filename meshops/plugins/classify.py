"""``IMAGE_CLASSIFY_01``: one payload per image with the model's top classes.

``AI_ENGINE`` names an image-classification model (default ``efficientnet_lite0``, which
``meshops models prepare`` exports). Each payload::

    {"LABEL": "daisy", "CLASS_ID": 985, "SCORE": 0.93, "TOP": [...], "FILE": "flower.jpg",
     "CAPTURED_AT": 1764230000.12, "ALERT": false}

(``CAPTURED_AT``: when the capture read the image, epoch seconds: for latency monitoring.)

``ALERT`` is true when the top class is one of ``ALERT_CLASSES`` (ids or labels) with at
least ``MIN_SCORE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["ClassifyConfig", "ClassifyPlugin"]


class ClassifyConfig(PluginConfig):
    process_delay: float = Field(default=0.0, ge=0)
    ai_engine: str | None = Field(default="efficientnet_lite0", description="The classifier.")
    top_k: int = Field(default=3, ge=1, le=100, description="Classes listed in TOP.")
    alert_classes: list[int | str] = Field(
        default_factory=list, description="Class ids or labels that raise ALERT."
    )
    min_score: float = Field(default=0.0, ge=0, le=1, description="Lowest SCORE that alerts.")


class ClassifyPlugin(BusinessPlugin):
    SIGNATURE = "IMAGE_CLASSIFY_01"
    CONFIG = ClassifyConfig
    config: ClassifyConfig

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        if len(inputs.inferences) != len(inputs.items):
            raise PluginError(f"{self.SIGNATURE}: no inferences (is AI_ENGINE served here?)")
        for item, result in zip(inputs.items, inputs.inferences, strict=True):
            if result is None:
                continue
            wanted = self.config.alert_classes
            alert = (result["CLASS_ID"] in wanted or result["LABEL"] in wanted) and result[
                "SCORE"
            ] >= self.config.min_score
            self.add_payload(
                LABEL=result["LABEL"],
                CLASS_ID=result["CLASS_ID"],
                SCORE=round(float(result["SCORE"]), 4),
                TOP=[
                    [t["CLASS_ID"], t["LABEL"], round(float(t["SCORE"]), 4)]
                    for t in result["TOP"][: self.config.top_k]
                ],
                FILE=item.metadata.get("file"),
                CAPTURED_AT=round(item.timestamp, 6),
                ALERT=bool(alert),
            )
        return None

    def model_input(self, item: Any) -> Any:
        return item.image
