"""``TEXT_EMBED_01``: sentence embeddings, and the closest sentence seen so far.

Each captured item gives a text: a string, or the ``TEXT_KEY`` field (default ``TEXT``) of
a row. ``AI_ENGINE`` names a text-embedding model (default ``minilm``, all-MiniLM-L6-v2,
exported by ``meshops models prepare``). For every text the plugin sends::

    {"TEXT": "...", "DIM": 384, "NEAREST": "an earlier text", "SIMILARITY": 0.83,
     "EMBEDDING": [...]}            # EMBEDDING only with INCLUDE_EMBEDDING

``NEAREST`` is the most similar (cosine) of the last ``MEMORY`` texts, so duplicates and
paraphrases show up as they stream by; ``SIMILAR`` is true from ``THRESHOLD``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from meshops.capture.base import CaptureItem
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["EmbedConfig", "EmbedPlugin"]


class EmbedConfig(PluginConfig):
    process_delay: float = Field(default=0.0, ge=0)
    ai_engine: str | None = Field(default="minilm", description="The text-embedding model.")
    text_key: str = Field(default="TEXT", min_length=1, description="Field holding the text.")
    memory: int = Field(default=1000, ge=1, le=100_000, description="Texts remembered.")
    threshold: float = Field(default=0.7, ge=-1, le=1, description="SIMILAR from this cosine.")
    include_embedding: bool = Field(default=False, description="Send the vector too.")


class EmbedPlugin(BusinessPlugin):
    SIGNATURE = "TEXT_EMBED_01"
    CONFIG = EmbedConfig
    config: EmbedConfig

    def on_init(self) -> None:
        self.seen: collections.deque[tuple[str, np.ndarray]] = collections.deque(
            maxlen=self.config.memory
        )

    def model_input(self, item: CaptureItem) -> Any:
        data = item.data
        if isinstance(data, Mapping):
            data = data.get(self.config.text_key)
        return data if isinstance(data, str) and data.strip() else None

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        for item, result in zip(inputs.items, inputs.inferences, strict=False):
            if result is None:
                continue
            text = self.model_input(item)
            vector = np.asarray(result["EMBEDDING"], dtype=np.float32)
            body: dict[str, Any] = {"TEXT": text, "DIM": int(vector.shape[0])}
            if self.seen:
                scores = np.stack([v for _, v in self.seen]) @ vector
                best = int(np.argmax(scores))
                body["NEAREST"] = self.seen[best][0]
                body["SIMILARITY"] = round(float(scores[best]), 4)
                body["SIMILAR"] = bool(scores[best] >= self.config.threshold)
            if self.config.include_embedding:
                body["EMBEDDING"] = [round(float(x), 6) for x in vector]
            self.seen.append((text, vector))
            self.add_payload(**body)
        return None
