"""Local-file sources: a pipeline ``URL`` turned into a path, checked before opening.

Shared by ``VideoFile`` and ``StructuredFile`` so both report a bad path the same way,
naming it, instead of OpenCV's silent "not opened" or a bare ``FileNotFoundError``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from meshops.errors import PluginError

__all__ = ["local_path", "require_readable"]


def local_path(url: str) -> Path:
    """The path in ``url``: a plain path, ``~/...``, or a ``file://`` URL."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    return Path(url).expanduser()


def require_readable(path: Path) -> None:
    """Raise a ``PluginError`` naming ``path`` unless it is a readable regular file."""
    if not path.exists():
        raise PluginError(f"file not found: {path}")
    if not path.is_file():
        raise PluginError(f"not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise PluginError(f"file not readable (permissions): {path}")
