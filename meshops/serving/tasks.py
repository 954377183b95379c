"""Pre- and post-processing around an ONNX session, chosen by the model's ``task``.

Each task turns a list of plugin-side inputs (frames, sentences, rows) into one batch, runs
the session once, and splits the outputs into one inference per input:

- ``image-classification``: frames (H x W x 3 uint8, BGR as OpenCV captures them) -> centre
  crop, 224 x 224, ``(x - 127) / 128``, NCHW (``zoo.imagenet_preprocess``) ->
  ``{"CLASS_ID", "LABEL", "SCORE", "TOP"}`` with ``TOP_K`` entries;
- ``text-embedding``: sentences -> ``tokenizers`` (no torch) -> mean-pooled, L2-normalised
  ``{"EMBEDDING": float32 vector}``;
- ``tabular``: rows of numbers -> every model output by name (``{"LABEL", "PROBABILITIES"}``
  for a scikit-learn classifier converted with skl2onnx);
- ``raw``: arrays of the model's input shape (without the batch axis) -> every output by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from meshops.errors import ServingError

__all__ = ["make_task", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@cache
def imagenet_labels() -> tuple[str, ...]:
    """Short ImageNet class names (the first synonym of each), index order."""
    from meshops.serving.zoo import imagenet_classes

    return tuple(name.split(",")[0] for name in imagenet_classes())


class _Task:
    def __init__(self, session: Any, files: Mapping[str, Path], options: Mapping[str, Any]):
        self.session = session
        self.options = options
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def predict(self, inputs: list[Any]) -> list[Any]:
        raise NotImplementedError


class ImageClassification(_Task):
    def __init__(self, session: Any, files: Mapping[str, Path], options: Mapping[str, Any]):
        super().__init__(session, files, options)
        self.bgr = bool(options.get("bgr", True))  # captures give OpenCV's BGR frames
        self.top_k = int(options.get("top_k", 5))
        if "labels" in files:
            self.labels = tuple(Path(files["labels"]).read_text().splitlines())
        elif options.get("labels", "imagenet") == "imagenet":
            self.labels = imagenet_labels()
        else:
            self.labels = ()

    def prepare(self, image: Any) -> np.ndarray:
        from meshops.serving.zoo import imagenet_preprocess

        frame = np.asarray(image)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ServingError(f"image-classification: expected H x W x 3, got {frame.shape}")
        frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        return imagenet_preprocess(frame, bgr=self.bgr)[0]

    def predict(self, inputs: list[Any]) -> list[Any]:
        batch = np.stack([self.prepare(image) for image in inputs])
        (logits,) = self.session.run(self.output_names[:1], {self.input_names[0]: batch})
        probabilities = softmax(logits.astype(np.float32))
        results = []
        for row in probabilities:
            top = np.argsort(row)[::-1][: self.top_k]
            ranked = [
                {"CLASS_ID": int(i), "LABEL": self._label(int(i)), "SCORE": float(row[i])}
                for i in top
            ]
            results.append({**ranked[0], "TOP": ranked})
        return results

    def _label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else str(index)


class TextEmbedding(_Task):
    def __init__(self, session: Any, files: Mapping[str, Path], options: Mapping[str, Any]):
        super().__init__(session, files, options)
        from tokenizers import Tokenizer

        if "tokenizer" not in files:
            raise ServingError("text-embedding: the model needs a 'tokenizer' file")
        self.tokenizer = Tokenizer.from_file(str(files["tokenizer"]))
        self.tokenizer.enable_truncation(int(options.get("max_length", 256)))
        self.tokenizer.enable_padding()
        self.normalize = bool(options.get("normalize", True))

    def predict(self, inputs: list[Any]) -> list[Any]:
        texts = []
        for text in inputs:
            if not isinstance(text, str):
                raise ServingError(f"text-embedding: expected text, got {type(text).__name__}")
            texts.append(text)
        encodings = self.tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feeds = {name: feeds[name] for name in self.input_names if name in feeds}
        hidden = self.session.run(self.output_names[:1], feeds)[0].astype(np.float32)
        if hidden.ndim == 3:  # token embeddings: mean over the real (unpadded) tokens
            weights = mask[..., None].astype(np.float32)
            hidden = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            hidden = hidden / np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-12)
        return [{"EMBEDDING": row} for row in hidden]


def _rows(outputs: list[Any], names: list[str], count: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in range(count)]
    for name, value in zip(names, outputs, strict=True):
        for i in range(count):
            item = value[i]
            if isinstance(item, np.generic):
                item = item.item()
            results[i][name.upper()] = item
    return results


class Tabular(_Task):
    def predict(self, inputs: list[Any]) -> list[Any]:
        try:
            batch = np.asarray(inputs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ServingError(f"tabular: inputs must be rows of numbers: {exc}") from exc
        if batch.ndim == 1:
            batch = batch[:, None]
        outputs = self.session.run(self.output_names, {self.input_names[0]: batch})
        return _rows(outputs, self.output_names, len(inputs))


class Raw(_Task):
    def predict(self, inputs: list[Any]) -> list[Any]:
        batch = np.stack([np.asarray(x) for x in inputs])
        element = self.session.get_inputs()[0].type
        if "float" in element and batch.dtype != np.float32:
            batch = batch.astype(np.float32)
        outputs = self.session.run(self.output_names, {self.input_names[0]: batch})
        return _rows(outputs, self.output_names, len(inputs))


_TASKS: dict[str, Callable[..., _Task]] = {
    "image-classification": ImageClassification,
    "text-embedding": TextEmbedding,
    "tabular": Tabular,
    "raw": Raw,
}


def make_task(task: str, session: Any, files: Mapping[str, Path], options: Mapping[str, Any]):
    if task not in _TASKS:
        raise ServingError(f"task {task!r} is not served by the onnx backend")
    return _TASKS[task](session, files, options)
