"""The one way the zoo turns a torch module into an ONNX file."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshops.serving.zoo._files import replace_atomically, require

__all__ = ["OPSET", "export_onnx"]

OPSET = 18

# Exporter chatter that says nothing about the model: torchvision ops it cannot register
# (torchvision is deliberately not installed) and torch-internal deprecations.
_QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration",)
_QUIET_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)", r"# The axis name: .* will not be used")


def export_onnx(
    model: Any,
    example: tuple[Any, ...],
    path: Path,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_shapes: Mapping[str, Mapping[int, Any]],
) -> Path:
    """Export ``model`` (in eval mode) to a single self-contained ONNX file at ``path``.

    Uses the ``torch.export`` based exporter; ``dynamic_shapes`` maps each forward argument
    to its dynamic axes (``torch.export.Dim``), whose names become the ONNX dimension names.
    The exporter's debugging metadata (stack traces with absolute source paths, FX node
    text) is stripped, so the bytes depend only on the model and the torch and onnxscript
    versions: exports repeat byte for byte on any machine and from any checkout.
    """
    torch = require("torch")
    model.eval()

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings(), _quiet(_QUIET_LOGGERS):
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            torch.onnx.export(
                model,
                example,
                str(tmp),
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_shapes=dict(dynamic_shapes),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        _strip_debug_metadata(tmp)

    return replace_atomically(path, write)


def _strip_debug_metadata(path: Path) -> None:
    onnx = require("onnx")
    model = onnx.load(str(path))
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
            del value.metadata_props[:]
        for node in graph.node:
            del node.metadata_props[:]
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.HasField("g") else attribute.graphs)
    for function in model.functions:
        for node in function.node:
            del node.metadata_props[:]
    onnx.save(model, str(path))


@contextmanager
def _quiet(names: Sequence[str]) -> Iterator[None]:
    """The named loggers raised to ERROR for the duration of a ``with`` block."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
