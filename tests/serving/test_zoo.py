"""The model zoo exports real models that give the right answers through onnxruntime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_sample_image

import meshops.serving.zoo
from meshops.errors import ServingError
from meshops.serving.zoo import (
    ModelFiles,
    SentenceEmbedder,
    digits_holdout,
    export_digits,
    export_efficientnet_lite0,
    haar_face_cascade,
    imagenet_classes,
    imagenet_label,
    imagenet_preprocess,
    prepare,
)

PALACE, DAISY = 698, 985


def session(files: ModelFiles) -> ort.InferenceSession:
    return ort.InferenceSession(str(files.path), providers=["CPUExecutionProvider"])


def test_efficientnet_names_the_sample_photos(zoo: dict[str, ModelFiles]) -> None:
    photos = [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    batch = np.concatenate([imagenet_preprocess(p) for p in photos])
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32

    (logits,) = session(zoo["efficientnet_lite0"]).run(["logits"], {"input": batch})

    assert logits.shape == (2, 1000)
    assert list(logits.argmax(1)) == [PALACE, DAISY]
    assert [imagenet_label(int(i)) for i in logits.argmax(1)] == ["palace", "daisy"]


def test_imagenet_preprocess_reads_bgr_frames() -> None:
    rgb = load_sample_image("flower.jpg")
    np.testing.assert_array_equal(
        imagenet_preprocess(rgb[:, :, ::-1].copy(), bgr=True), imagenet_preprocess(rgb)
    )
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        imagenet_preprocess(rgb.astype(np.float32))


def test_imagenet_labels() -> None:
    assert len(imagenet_classes()) == 1000
    assert imagenet_label(0) == "tench"
    assert imagenet_label(0, full=True) == "tench, Tinca tinca"
    assert imagenet_label(999) == "toilet tissue"
    with pytest.raises(IndexError):
        imagenet_label(1000)


def test_minilm_scores_paraphrases_above_unrelated_sentences(zoo: dict[str, ModelFiles]) -> None:
    embedder = SentenceEmbedder.from_files(zoo["minilm"])
    vectors = embedder.embed(
        [
            "A man is playing a guitar.",
            "Someone is strumming a guitar.",
            "The central bank raised interest rates again.",
            "Interest rates were increased by the central bank.",
        ]
    )

    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    paraphrases = min(similarity[0, 1], similarity[2, 3])
    unrelated = max(similarity[0, 2], similarity[0, 3], similarity[1, 2], similarity[1, 3])
    assert paraphrases > unrelated + 0.3
    assert embedder.embed([]).shape == (0, 384)


def test_minilm_embedding_does_not_depend_on_batch_padding(zoo: dict[str, ModelFiles]) -> None:
    embedder = SentenceEmbedder.from_files(zoo["minilm"])
    alone = embedder.embed(["A short one."])
    padded = embedder.embed(["A short one.", "A much longer sentence that forces padding " * 5])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_digits_classifier_generalises(zoo: dict[str, ModelFiles]) -> None:
    images, labels = digits_holdout()

    predicted, probabilities = session(zoo["digits"]).run(
        ["label", "probabilities"], {"input": images}
    )

    assert probabilities.shape == (len(labels), 10)
    assert (predicted == labels).mean() > 0.95


def test_haar_cascade_finds_grace_hoppers_face(zoo: dict[str, ModelFiles]) -> None:
    photo = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    grey = cv2.equalizeHist(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    cascade = cv2.CascadeClassifier(str(zoo["haar_face"].path))

    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(60, 60))

    assert len(faces) == 1
    x, y, w, h = faces[0]
    assert 150 < x + w / 2 < 350 and 120 < y + h / 2 < 320  # her face, upper middle
    assert haar_face_cascade().read_bytes() == zoo["haar_face"].path.read_bytes()


def test_metadata_describes_each_export(zoo: dict[str, ModelFiles], zoo_dir: Path) -> None:
    for name, files in zoo.items():
        assert files.metadata_path == zoo_dir / f"{name}.json"
        assert ModelFiles.read(files.metadata_path) == files
        assert files.path.is_file() and all(p.is_file() for p in files.extra)
    assert dict(zoo["efficientnet_lite0"].inputs) == {"input": ("batch", 3, 224, 224)}
    assert dict(zoo["minilm"].outputs) == {"embeddings": ("batch", 384)}
    inputs = {i.name: i.shape for i in session(zoo["minilm"]).get_inputs()}
    assert inputs == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}


def test_torch_exports_carry_no_source_paths(zoo: dict[str, ModelFiles]) -> None:
    """Debug metadata is stripped, so the bytes do not depend on where meshops is installed."""
    source = str(Path(meshops.serving.zoo.__file__).parent).encode()
    for name in ("efficientnet_lite0", "minilm"):
        data = zoo[name].path.read_bytes()
        assert source not in data and b"stack_trace" not in data


def test_a_current_export_is_kept_and_a_damaged_one_rebuilt(
    zoo: dict[str, ModelFiles], zoo_dir: Path
) -> None:
    model = zoo["efficientnet_lite0"].path
    before = model.stat().st_mtime_ns
    assert export_efficientnet_lite0(zoo_dir) == zoo["efficientnet_lite0"]
    assert model.stat().st_mtime_ns == before

    digits = zoo["digits"].path
    original = digits.read_bytes()
    digits.write_bytes(b"damaged")
    assert export_digits(zoo_dir) == zoo["digits"]
    assert digits.read_bytes() == original  # training and conversion are deterministic


def test_prepare_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="unknown model"):
        prepare(["digits", "gpt-5"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_exports_without_torch_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ServingError, match=r"meshops\[models\].*torch==2\.13\.0"):
        export_efficientnet_lite0(tmp_path)


def test_zoo_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import meshops.serving.zoo\n"
        "heavy = {'torch', 'sklearn', 'skl2onnx', 'onnx', 'cv2', 'transformers'}\n"
        "loaded = {m for m in heavy if sys.modules.get(m)}\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
