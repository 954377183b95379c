"""The zoo's models, exported once per test session (torch runs only here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops.serving.zoo import EXPORTS, ModelFiles, prepare


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo(zoo_dir: Path) -> dict[str, ModelFiles]:
    """Every model, exported once for the whole session."""
    return {files.name: files for files in prepare(list(EXPORTS), zoo_dir)}
