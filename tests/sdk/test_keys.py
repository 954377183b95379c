"""The client key: ~/.meshops/client.pem, made once with mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from meshops.errors import ConfigError
from meshops.protocol import NodeKey
from meshops.sdk import load_client_key


def test_the_default_key_is_made_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    key = load_client_key()
    path = tmp_path / ".meshops" / "client.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_client_key() == key == load_client_key(path) == load_client_key(str(path))
    other = NodeKey.generate()
    assert load_client_key(other) is other
    with pytest.raises(ConfigError, match="does not exist"):
        load_client_key(tmp_path / "typo.pem")
