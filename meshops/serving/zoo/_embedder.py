"""Run-time sentence embeddings: ``tokenizers`` + onnxruntime, no torch, no transformers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from meshops.serving.zoo._files import ModelFiles
from meshops.serving.zoo._minilm import MINILM_DIM, MINILM_MAX_TOKENS

__all__ = ["SentenceEmbedder"]


class SentenceEmbedder:
    """Embeds sentences with the exported MiniLM model; rows are unit vectors.

    The tokenizer is set up here (pad to the longest sentence of a batch, truncate at the
    model's limit) rather than trusting the file's own settings, which pad everything to 128.
    """

    def __init__(
        self,
        model: Path,
        tokenizer: Path,
        *,
        max_tokens: int = MINILM_MAX_TOKENS,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self._session = ort.InferenceSession(str(model), providers=list(providers))

    @classmethod
    def from_files(
        cls,
        files: ModelFiles,
        *,
        max_tokens: int = MINILM_MAX_TOKENS,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> SentenceEmbedder:
        """The embedder for an ``export_minilm`` result (model + its tokenizer file)."""
        tokenizer = next(p for p in files.extra if p.name.endswith("tokenizer.json"))
        return cls(files.path, tokenizer, max_tokens=max_tokens, providers=providers)

    def embed(self, sentences: Sequence[str]) -> np.ndarray:
        """float32 ``len(sentences) x 384``; cosine similarity of two rows is their dot product."""
        if not sentences:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(sentences))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        return self._session.run(["embeddings"], feeds)[0]
