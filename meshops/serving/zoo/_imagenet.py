"""Run-time helpers for the ImageNet classifier: input preprocessing and class names.

Numpy only, so a serving node needs neither torch nor OpenCV to feed the model. The class
names are the standard ImageNet-1k (ILSVRC 2012) list in index order, one WordNet synonym
set per line of ``imagenet_classes.txt``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["IMAGENET_SIZE", "imagenet_classes", "imagenet_label", "imagenet_preprocess"]

IMAGENET_SIZE = 224
_CROP_FRACTION = 224 / 256  # the usual "resize to 256, centre-crop 224"
_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 class descriptions, index order (``"palace"``, ``"daisy"``, ...)."""
    names = tuple(_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE} holds {len(names)} classes, expected 1000")
    return names


def imagenet_label(index: int, *, full: bool = False) -> str:
    """Name of class ``index``: its first synonym, or the whole synonym list if ``full``."""
    names = imagenet_classes()
    if not 0 <= index < len(names):
        raise IndexError(f"ImageNet class index {index} is outside 0..{len(names) - 1}")
    return names[index] if full else names[index].split(",")[0]


def imagenet_preprocess(image: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """An HxWx3 uint8 image as the classifier's float32 ``1x3x224x224`` input.

    Centre square crop (224/256 of the short side), resize to 224x224, RGB, then
    ``(x - 127) / 128``: the EfficientNet-Lite normalisation. Pass ``bgr=True`` for OpenCV
    frames.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * _CROP_FRACTION))
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    if bgr:
        crop = crop[:, :, ::-1]
    resized = _resize_square(crop.astype(np.float32), IMAGENET_SIZE)
    return ((resized - 127.0) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square float image; a box average first when shrinking 2x or more."""
    factor = image.shape[0] // size
    if factor >= 2:
        n = image.shape[0] // factor * factor
        image = image[:n, :n].reshape(n // factor, factor, n // factor, factor, 3).mean((1, 3))
    src = image.shape[0]
    coords = np.clip((np.arange(size) + 0.5) * src / size - 0.5, 0, src - 1)
    lo = np.floor(coords).astype(np.intp)
    hi = np.minimum(lo + 1, src - 1)
    frac = (coords - lo).astype(np.float32)
    rows = image[lo] * (1 - frac)[:, None, None] + image[hi] * frac[:, None, None]
    return rows[:, lo] * (1 - frac)[None, :, None] + rows[:, hi] * frac[None, :, None]
