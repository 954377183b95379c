"""The committed artifacts are exactly what the pinned solc makes of the committed sources.

Needs Node.js and ``npm ci --prefix contracts`` (scripts/test runs it); without them this
test fails rather than skips, so a stale artifact can never pass CI unnoticed.
"""

from __future__ import annotations

import json

import pytest

from meshops.chain.build import compile_sources, default_contracts_dir, render
from meshops.chain.compiled import ARTIFACTS_DIR, CONTRACT_NAMES, load_artifact


@pytest.mark.slow
def test_committed_artifacts_match_a_fresh_compile() -> None:
    fresh = compile_sources(default_contracts_dir())
    assert sorted(fresh) == sorted(CONTRACT_NAMES)
    for name, artifact in fresh.items():
        committed = (ARTIFACTS_DIR / f"{name}.json").read_text("utf-8")
        assert committed == render(artifact), (
            f"{name}.json is stale: run `python -m meshops.chain.build` and commit the result"
        )


def test_pinned_toolchain_is_exact() -> None:
    package = json.loads((default_contracts_dir() / "package.json").read_text("utf-8"))
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name} must be pinned exactly, not {version!r}"
    compiler = load_artifact("MeshToken").compiler
    assert compiler.startswith(package["dependencies"]["solc"] + "+")
