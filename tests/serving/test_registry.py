"""The model registry: content-addressed files, versions, verified chunked uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from meshops.errors import ServingError
from meshops.serving import ModelRegistry, sha256_file
from meshops.serving.catalog import DEFAULT_MODELS
from tests.serving.models import affine_model


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "models")
    yield reg
    reg.close()


def test_models_are_stored_by_content_hash_and_versioned(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1 = affine_model(tmp_path / "a.onnx", np.eye(3), np.zeros(3))
    v2 = affine_model(tmp_path / "b.onnx", 2 * np.eye(3), np.ones(3))
    m1 = registry.add("affine", {"model": v1}, version="1")
    m2 = registry.add("affine", {"model": v2}, version="2")
    assert m1.files["model"] == sha256_file(v1) != m2.files["model"]
    assert registry.get("affine") == m2  # the newest
    assert registry.get("affine@1") == m1
    stored = registry.files(m1)["model"]
    assert stored.read_bytes() == v1.read_bytes() and stored.name == m1.files["model"]
    assert m1.digest != m2.digest
    names = [m.ref for m in registry.list()]
    assert {"haar_face@opencv4", "aruco_4x4@opencv4", "affine@1", "affine@2"} <= set(names)
    # the same file twice is stored once
    registry.add("copy", {"model": v1})
    assert len(list(registry.blobs.iterdir())) == 2


def test_unknown_model_lists_what_exists(registry: ModelRegistry) -> None:
    with pytest.raises(
        ServingError, match=r"no model 'nope'.*has: haar_face@opencv4, aruco_4x4@opencv4\)$"
    ):
        registry.get("nope")
    for name in DEFAULT_MODELS:  # the hint offers exactly what prepare makes
        with pytest.raises(ServingError, match=f"`meshops models prepare {name} --registry"):
            registry.get(name)
    with pytest.raises(ServingError, match=r"`meshops models prepare minilm --registry .*` makes"):
        registry.get("minilm")
    with pytest.raises(ServingError, match="no model 'haar_face@9'"):
        registry.get("haar_face@9")


def test_registry_survives_a_restart(tmp_path: Path) -> None:
    path = affine_model(tmp_path / "a.onnx", np.eye(2), np.zeros(2))
    first = ModelRegistry(tmp_path / "models")
    added = first.add("affine", {"model": path}, task="raw")
    first.close()
    again = ModelRegistry(tmp_path / "models")
    assert again.get("affine") == added
    again.close()


def test_chunked_upload_verified_against_its_hash(registry: ModelRegistry, tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(300_000)
    digest = hashlib.sha256(data).hexdigest()
    registry.begin_upload("u1", digest, len(data))
    for offset in reversed(range(0, len(data), 65_536)):  # any order
        registry.write_chunk("u1", offset, data[offset : offset + 65_536])
    assert registry.finish_upload("u1") == digest
    assert registry.blob_path(digest).read_bytes() == data


def test_hash_mismatch_is_refused_and_nothing_stored_is_lost(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    path = affine_model(tmp_path / "a.onnx", np.eye(2), np.zeros(2))
    kept = registry.add("affine", {"model": path})
    data = b"x" * 1000
    registry.begin_upload("u2", hashlib.sha256(b"something else").hexdigest(), len(data))
    registry.write_chunk("u2", 0, data)
    with pytest.raises(ServingError, match="hash mismatch"):
        registry.finish_upload("u2")
    assert not any(p.name.startswith("u2") for p in registry.uploads_dir.iterdir())
    assert registry.get("affine") == kept and registry.files(kept)["model"].is_file()
    with pytest.raises(ServingError, match="hash mismatch"):
        registry.add_file(path, expected_sha256="0" * 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad id!", "0" * 64, 10), "upload id"),
        (("u3", "XYZ", 10), "SHA256"),
        (("u3", "0" * 64, -1), "SIZE"),
    ],
)
def test_bad_upload_announcements_are_named(
    registry: ModelRegistry, args: tuple, message: str
) -> None:
    with pytest.raises(ServingError, match=message):
        registry.begin_upload(*args)


def test_chunks_outside_the_announced_size_are_refused(registry: ModelRegistry) -> None:
    registry.begin_upload("u4", "0" * 64, 10)
    with pytest.raises(ServingError, match="outside the announced size"):
        registry.write_chunk("u4", 8, b"abcd")
    with pytest.raises(ServingError, match="no upload 'u5'"):
        registry.write_chunk("u5", 0, b"a")


def test_manifest_errors_are_named(registry: ModelRegistry) -> None:
    with pytest.raises(ServingError, match="files not stored yet: model"):
        registry.register({"name": "m", "files": {"model": "a" * 64}})
    with pytest.raises(ServingError, match="task"):
        registry.register({"name": "m", "task": "dance"})
    with pytest.raises(ServingError, match="built-in"):
        registry.register({"name": "haar_face", "backend": "python", "factory": "x:y"})
    with pytest.raises(ServingError, match="needs a 'model' file"):
        registry.register({"name": "m"})


def test_remove_keeps_blobs_other_versions_use(registry: ModelRegistry, tmp_path: Path) -> None:
    path = affine_model(tmp_path / "a.onnx", np.eye(2), np.zeros(2))
    a = registry.add("a", {"model": path})
    registry.add("b", {"model": path})
    registry.remove("a")
    assert registry.files(registry.get("b"))["model"].is_file()
    registry.remove("b")
    assert not registry.blob_path(a.files["model"]).exists()
    with pytest.raises(ServingError, match="built in"):
        registry.remove("haar_face")
