"""``ImageFolder``: the images of a local folder, one per tick, in name order.

For classifying or detecting over a batch of photos. ``PATTERN`` (a glob, default every
``.jpg``, ``.jpeg``, ``.png``, ``.bmp`` and ``.webp``) picks the files; each item's image is
the decoded BGR array and its metadata names the file. A file OpenCV cannot decode is
skipped and reported, naming it; the capture goes on. At the end it finishes, or with
``LOOP`` starts again (files added meanwhile are picked up).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from meshops.capture._files import local_path
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.errors import PluginError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderCapture", "ImageFolderConfig"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageFolderConfig(CaptureConfig):
    url: str = Field(min_length=1, description="The folder on the node.")
    pattern: str | None = Field(
        default=None, description="Glob of the files to read; default: common image types."
    )
    loop: bool = Field(default=False, description="Start again at the end instead of finishing.")


class ImageFolderCapture(DataCapture):
    """metadata: ``file`` (name), ``path``, ``index`` (1-based in this pass), ``count``."""

    TYPE: ClassVar[str] = "ImageFolder"
    CONFIG: ClassVar[type[CaptureConfig]] = ImageFolderConfig
    config: ImageFolderConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._folder = local_path(self.config.url)
        self._files: list[Path] = []
        self._next = 0
        self.skipped = 0

    def _list(self) -> list[Path]:
        if not self._folder.is_dir():
            raise PluginError(f"not a folder: {self._folder}")
        if self.config.pattern:
            found = self._folder.glob(self.config.pattern)
        else:
            found = (p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return sorted(p for p in found if p.is_file())

    def open(self) -> None:
        import cv2  # noqa: F401 - fail early, with the reason, when OpenCV is missing

        self._files = self._list()
        self._next = 0
        log.info("capture %s: %d images in %s", self.config.name, len(self._files), self._folder)

    def read(self) -> CaptureItem | None:
        import cv2

        while True:
            if self._next >= len(self._files):
                if not self.config.loop or not self._files:
                    return None
                self._files = self._list()
                self._next = 0
                continue
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                self._on_error(f"capture {self.config.name}: cannot decode image {path}")
                continue
            return CaptureItem(
                image=image,
                metadata={
                    "file": path.name,
                    "path": str(path),
                    "index": self._next,
                    "count": len(self._files),
                },
            )
