"""The real models, prepared into a registry and run by model servers (the serving path a
pipeline uses), pass the same sanity checks as when run directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_sample_image

from meshops.errors import ServingError
from meshops.serving import ModelRegistry, ServingManager
from meshops.serving.catalog import prepare_models
from meshops.serving.zoo import ModelFiles, digits_holdout


@pytest.fixture(scope="module")
def serving(zoo: dict[str, ModelFiles], zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    manifests = prepare_models(registry, work_dir=zoo_dir)  # reuses the session's exports
    assert [m.name for m in manifests] == ["efficientnet_lite0", "minilm", "digits"]
    manager = ServingManager(registry)
    yield manager
    manager.stop_all()
    registry.close()


def test_preparing_again_registers_the_same_versions(serving: ServingManager, zoo_dir: Path):
    before = {m.ref for m in serving.registry.list()}
    again = prepare_models(serving.registry, ["digits"], work_dir=zoo_dir)
    assert again[0].ref in before and {m.ref for m in serving.registry.list()} == before


def test_served_classifier_names_the_sample_photos(serving: ServingManager) -> None:
    client = serving.acquire("t/classify/1", "efficientnet_lite0")
    photos = [load_sample_image(name)[..., ::-1].copy() for name in ("china.jpg", "flower.jpg")]
    results = client.infer(photos).results  # BGR frames, as a capture gives them
    assert [(r["CLASS_ID"], r["LABEL"]) for r in results] == [(698, "palace"), (985, "daisy")]
    assert all(0.0 < r["SCORE"] <= 1.0 and len(r["TOP"]) == 5 for r in results)


def test_served_embeddings_rank_paraphrases_first(serving: ServingManager) -> None:
    client = serving.acquire("t/embed/1", "minilm")
    texts = [
        "A man is playing a guitar.",
        "Someone strums a guitar.",
        "The stock market fell sharply today.",
    ]
    vectors = np.stack([r["EMBEDDING"] for r in client.infer(texts).results])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_served_digits_classifier_generalises(serving: ServingManager) -> None:
    client = serving.acquire("t/digits/1", "digits")
    features, labels = digits_holdout()
    results = client.infer([row for row in features.astype(np.float32)]).results
    predicted = np.array([r["LABEL"] for r in results])
    assert (predicted == labels).mean() > 0.95


def test_text_to_an_image_model_fails_that_request_clearly(serving: ServingManager) -> None:
    client = serving.acquire("t/wrong/1", "efficientnet_lite0")
    with pytest.raises(ServingError, match="expected H x W x 3"):
        client.infer(["not an image"])
