"""OpenCV's frontal-face Haar cascade: not ONNX, a classic detector that ships with OpenCV.

``export_haar_face`` copies the cascade into the model folder so a prepared folder holds
every model a node serves, whatever OpenCV build the node later runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from meshops.errors import ServingError
from meshops.serving.zoo._files import ModelFiles, build_once, package_versions, replace_atomically

__all__ = ["FRONTAL_FACE_CASCADE", "export_haar_face", "haar_face_cascade"]

NAME = "haar_face"
FRONTAL_FACE_CASCADE = "haarcascade_frontalface_default.xml"
_RECIPE = 1


def haar_face_cascade() -> Path:
    """Path of the frontal-face cascade bundled with the installed OpenCV (``meshops[vision]``)."""
    try:
        import cv2
    except ImportError as exc:
        raise ServingError(
            "the Haar face cascade ships with OpenCV: pip install 'meshops[vision]' "
            f"(opencv-python-headless); import failed: {exc}"
        ) from exc
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / FRONTAL_FACE_CASCADE
    if not folder or not path.is_file():
        raise ServingError(
            f"this OpenCV ({cv2.__version__}) bundles no Haar cascades; "
            "meshops[vision] pins opencv-python-headless<5, which does"
        )
    return path


def export_haar_face(out_dir: Path) -> ModelFiles:
    """Copy the cascade to ``out_dir/haar_face.xml`` (+ metadata); skipped if current."""
    fingerprint = {
        "recipe": _RECIPE,
        "packages": package_versions("opencv-python-headless", "opencv-python"),
    }
    return build_once(out_dir, NAME, fingerprint, _build)


def _build(out_dir: Path) -> ModelFiles:
    source = haar_face_cascade()
    path = out_dir / f"{NAME}.xml"
    replace_atomically(path, lambda tmp: shutil.copyfile(source, tmp))
    return ModelFiles(
        name=NAME,
        path=path,
        inputs={"image": ("height", "width")},
        description="OpenCV Haar cascade for frontal faces (Viola-Jones), not a neural network.",
        preprocessing=(
            "load with cv2.CascadeClassifier(path); feed a uint8 greyscale image, "
            "equalised (cv2.equalizeHist); detectMultiScale returns x, y, w, h boxes."
        ),
    )
