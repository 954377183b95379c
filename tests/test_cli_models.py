"""``meshops models``, run as a user runs it: subprocesses against a registry folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.serving.models import affine_model

MESHOPS = [sys.executable, "-m", "meshops.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHOPS, "models", *args], capture_output=True, text=True, timeout=60)


def test_add_list_remove_and_errors(tmp_path: Path) -> None:
    registry = str(tmp_path / "models")
    model = affine_model(tmp_path / "affine.onnx", np.eye(2), np.zeros(2))
    added = run("add", "affine", str(model), "--task", "raw", "--registry", registry, "--json")
    assert added.returncode == 0, added.stderr
    (manifest,) = json.loads(added.stdout)
    assert manifest["name"] == "affine" and len(manifest["version"]) == 12

    listed = json.loads(run("list", "--registry", registry, "--json").stdout)
    assert [m["name"] for m in listed] == ["haar_face", "aruco_4x4", "affine"]

    missing = run("add", "other", str(tmp_path / "nope.onnx"), "--registry", registry)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: model file not found: {tmp_path / 'nope.onnx'}"

    # brackets in a message are printed as they are (not taken for console markup)
    odd = run("prepare", "odd[name]", "--registry", registry)
    assert odd.returncode == 1 and "unknown model(s) odd[name];" in odd.stderr
    assert len(odd.stderr.strip().splitlines()) == 1

    builtin = run("push", "haar_face", "--node", "n1", "--registry", registry)
    assert builtin.returncode == 1 and "built into every node" in builtin.stderr

    removed = run("remove", "affine", "--registry", registry)
    assert removed.returncode == 0 and "removed affine@" in removed.stdout
    gone = run("remove", "affine", "--registry", registry)
    assert gone.returncode == 1 and "no model 'affine'" in gone.stderr
