"""A handwritten-digit classifier trained at export time on scikit-learn's digits set.

Small and quick (well under a second to train and convert), so a test or a demo gets a real
trained model without any weights file. A fixed, stratified split keeps a quarter of the
data out of training; ``digits_holdout`` returns it to measure the exported model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from meshops.serving.zoo._files import (
    ModelFiles,
    build_once,
    package_versions,
    replace_atomically,
    require,
)

__all__ = ["digits_holdout", "export_digits"]

NAME = "digits"
_RECIPE = 1
_OPSET = 17
_SEED = 0
_HOLDOUT = 0.25


def export_digits(out_dir: Path) -> ModelFiles:
    """Train and write ``digits.onnx`` (+ metadata) into ``out_dir``; skipped if current."""
    fingerprint = {
        "recipe": _RECIPE,
        "opset": _OPSET,
        "packages": package_versions("scikit-learn", "skl2onnx", "onnx"),
    }
    return build_once(out_dir, NAME, fingerprint, _build)


def digits_holdout() -> tuple[np.ndarray, np.ndarray]:
    """The held-out images (float32 ``n x 64``, pixels 0..16) and their labels."""
    _, x_test, _, y_test = _split()
    return x_test.astype(np.float32), y_test


def _split() -> Any:
    datasets = require("sklearn.datasets")
    selection = require("sklearn.model_selection")
    x, y = datasets.load_digits(return_X_y=True)
    return selection.train_test_split(x, y, test_size=_HOLDOUT, random_state=_SEED, stratify=y)


def _build(out_dir: Path) -> ModelFiles:
    linear = require("sklearn.linear_model")
    pipeline = require("sklearn.pipeline")
    preprocessing = require("sklearn.preprocessing")
    skl2onnx = require("skl2onnx")
    data_types = require("skl2onnx.common.data_types")

    x_train, _, y_train, _ = _split()
    classifier = linear.LogisticRegression(max_iter=2000)
    model = pipeline.make_pipeline(preprocessing.StandardScaler(), classifier)
    model.fit(x_train, y_train)

    onnx_model = skl2onnx.convert_sklearn(
        model,
        name=NAME,
        initial_types=[("input", data_types.FloatTensorType([None, 64]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=_OPSET,
    )
    for value in (*onnx_model.graph.input, *onnx_model.graph.output):
        for dim in value.type.tensor_type.shape.dim[:1]:
            dim.dim_param = "batch"  # skl2onnx leaves the free batch axis unnamed
    path = out_dir / f"{NAME}.onnx"
    replace_atomically(path, lambda tmp: tmp.write_bytes(onnx_model.SerializeToString()))
    return ModelFiles(
        name=NAME,
        path=path,
        inputs={"input": ("batch", 64)},
        outputs={"label": ("batch",), "probabilities": ("batch", 10)},
        description="Handwritten digit classifier (8x8 scikit-learn digits, logistic regression).",
        preprocessing=(
            "8x8 grey image flattened row-major to 64 float32 values, 0 (white) .. 16 (black); "
            "outputs the digit (int64 label) and the 10 class probabilities."
        ),
    )
