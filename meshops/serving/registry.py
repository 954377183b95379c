"""A node's model registry: models by name and version, files stored by content hash.

Layout under the registry folder (``<node home>/models`` unless set)::

    index.sqlite          name, version -> manifest (JSON); safe for several processes
    blobs/<sha256>        every file once, named by its SHA-256, read-only
    uploads/<id>.part     files being received in chunks (verified before they become blobs)

A file only becomes a blob once its SHA-256 is what the sender announced, so a truncated or
tampered upload is refused and nothing stored before is touched. Built-in models (OpenCV's
Haar face cascade, its ArUco marker detector) need no file and are always listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshops._validation import describe_validation_error
from meshops.errors import ServingError
from meshops.serving.spec import ModelManifest, split_engine

__all__ = ["BUILTIN_MODELS", "ModelRegistry", "Upload", "sha256_file"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name     TEXT NOT NULL,
    version  TEXT NOT NULL,
    manifest TEXT NOT NULL,
    added    REAL NOT NULL,
    PRIMARY KEY (name, version)
);
"""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20

BUILTIN_MODELS = (
    ModelManifest(
        name="haar_face",
        version="opencv4",
        backend="python",
        task="detection",
        factory="meshops.serving.builtin:haar_face",
        options={"scale_factor": 1.1, "min_neighbors": 5, "min_size": 24},
        max_batch=8,
        max_wait_ms=2.0,
        description="OpenCV's bundled frontal-face Haar cascade (opencv-python-headless 4.x)",
        builtin=True,
    ),
    ModelManifest(
        name="aruco_4x4",
        version="opencv4",
        backend="python",
        task="detection",
        factory="meshops.serving.builtin:aruco_markers",
        max_batch=8,
        max_wait_ms=2.0,
        description="OpenCV's ArUco marker detector, dictionary DICT_4X4_50",
        builtin=True,
    ),
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Upload:
    """A file arriving in chunks; ``write`` them in any order, ``finish`` checks the hash."""

    sha256: str
    size: int
    path: Path
    started: float = 0.0


class ModelRegistry:
    """Thread- and process-safe registry in one folder."""

    def __init__(
        self,
        root: Path | str,
        *,
        max_file_bytes: int = 1 << 30,
        max_uploads: int = 4,
        upload_ttl_s: float = 600.0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.blobs = self.root / "blobs"
        self.uploads_dir = self.root / "uploads"
        self.max_file_bytes = max_file_bytes
        self.max_uploads = max_uploads
        self.upload_ttl_s = upload_ttl_s
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.root / "index.sqlite", check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ServingError(f"cannot open the model registry in {self.root}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- blobs ---------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ServingError(f"not a sha256 digest: {sha256!r}")
        return self.blobs / sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def add_file(self, path: Path | str, *, expected_sha256: str | None = None) -> str:
        """Copy a local file in (once); its SHA-256. A mismatch with ``expected`` refuses it."""
        source = Path(path).expanduser()
        if not source.is_file():
            raise ServingError(f"no such model file: {source}")
        tmp = self.uploads_dir / f"local-{os.getpid()}-{threading.get_ident()}.part"
        digest = hashlib.sha256()
        with source.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(CHUNK):
                digest.update(block)
                dst.write(block)
        return self._commit_blob(tmp, digest.hexdigest(), expected_sha256, str(source))

    def _commit_blob(self, tmp: Path, actual: str, expected: str | None, what: str) -> str:
        if expected is not None and actual != expected:
            tmp.unlink(missing_ok=True)
            raise ServingError(
                f"{what}: content hash mismatch: expected sha256 {expected}, got {actual}; "
                "the file was not stored"
            )
        target = self.blobs / actual
        if target.exists():
            tmp.unlink(missing_ok=True)
        else:
            tmp.chmod(0o444)
            os.replace(tmp, target)
        return actual

    # ---- chunked uploads -----------------------------------------------------------------

    def begin_upload(self, upload_id: str, sha256: str, size: int) -> Upload:
        """Start (or continue) receiving a file announced by hash and size."""
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", upload_id):
            raise ServingError(f"upload id {upload_id!r}: 1-64 letters, digits, '-' or '_'")
        if not _HEX64.match(sha256):
            raise ServingError(f"upload {upload_id}: SHA256 must be 64 lowercase hex digits")
        if not 0 <= size <= self.max_file_bytes:
            raise ServingError(
                f"upload {upload_id}: SIZE {size} outside 0..{self.max_file_bytes} bytes"
            )
        with self._lock:
            self._expire_uploads()
            upload = self._uploads.get(upload_id)
            if upload is not None:
                if (upload.sha256, upload.size) != (sha256, size):
                    raise ServingError(f"upload {upload_id}: SHA256/SIZE differ from its start")
                return upload
            if len(self._uploads) >= self.max_uploads:
                raise ServingError(f"too many uploads in progress (at most {self.max_uploads})")
            path = self.uploads_dir / f"{upload_id}.part"
            with path.open("wb") as f:
                f.truncate(size)
            upload = Upload(sha256, size, path, started=time.monotonic())
            self._uploads[upload_id] = upload
            return upload

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise ServingError(f"no upload {upload_id!r} in progress (send its first chunk)")
            if offset < 0 or offset + len(data) > upload.size:
                raise ServingError(
                    f"upload {upload_id}: chunk at {offset} (+{len(data)} bytes) is outside "
                    f"the announced size {upload.size}"
                )
            with upload.path.open("r+b") as f:
                f.seek(offset)
                f.write(data)
            return upload

    def finish_upload(self, upload_id: str) -> str:
        """Verify the received file against its announced hash and store it."""
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        if upload is None:
            raise ServingError(f"no upload {upload_id!r} in progress")
        actual = sha256_file(upload.path)
        return self._commit_blob(upload.path, actual, upload.sha256, f"upload {upload_id}")

    def abort_upload(self, upload_id: str) -> None:
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)

    def _expire_uploads(self) -> None:
        now = time.monotonic()
        for upload_id, upload in list(self._uploads.items()):
            if now - upload.started > self.upload_ttl_s:
                del self._uploads[upload_id]
                upload.path.unlink(missing_ok=True)

    # ---- manifests -----------------------------------------------------------------------

    def register(self, manifest: ModelManifest | Mapping[str, Any]) -> ModelManifest:
        """Record a model version whose files are already stored; replaces the same version."""
        if not isinstance(manifest, ModelManifest):
            try:
                manifest = ModelManifest.model_validate(dict(manifest))
            except ValidationError as exc:
                raise ServingError(f"bad model manifest: {describe_validation_error(exc)}") from exc
        if manifest.builtin or manifest.name in {m.name for m in BUILTIN_MODELS}:
            raise ServingError(f"{manifest.name!r} is a built-in model name")
        missing = [role for role, h in manifest.files.items() if not self.has_blob(h)]
        if missing:
            raise ServingError(f"{manifest.ref}: files not stored yet: {', '.join(missing)}")
        if manifest.backend == "onnx" and "model" not in manifest.files:
            raise ServingError(f"{manifest.ref}: an onnx model needs a 'model' file")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO models (name, version, manifest, added) VALUES (?,?,?,?)",
                (manifest.name, manifest.version, manifest.model_dump_json(), time.time()),
            )
        return manifest

    def add(
        self,
        name: str,
        files: Mapping[str, Path | str],
        *,
        version: str = "1",
        **fields: Any,
    ) -> ModelManifest:
        """Store local files (``{"model": path, ...}``) and register them as ``name@version``."""
        hashes = {role: self.add_file(path) for role, path in files.items()}
        return self.register({"name": name, "version": version, "files": hashes, **fields})

    def get(self, engine: str) -> ModelManifest:
        """``name`` (newest version) or ``name@version``; ServingError listing what exists."""
        name, version = split_engine(engine)
        for builtin in BUILTIN_MODELS:
            if builtin.name == name and version in (None, builtin.version):
                return builtin
        with self._lock:
            if version is None:
                row = self._db.execute(
                    "SELECT manifest FROM models WHERE name=? ORDER BY added DESC LIMIT 1",
                    (name,),
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT manifest FROM models WHERE name=? AND version=?", (name, version)
                ).fetchone()
        if row is None:
            known = ", ".join(m.ref for m in self.list()) or "none"
            hint = ""
            from meshops.serving.catalog import DEFAULT_MODELS  # (it imports this module)

            if name in DEFAULT_MODELS:
                hint = f"; `meshops models prepare {name} --registry {self.root}` makes it"
            raise ServingError(
                f"no model {engine!r} in the registry {self.root} (has: {known}){hint}"
            )
        return ModelManifest.model_validate(json.loads(row[0]))

    def list(self) -> list[ModelManifest]:
        with self._lock:
            rows = self._db.execute("SELECT manifest FROM models ORDER BY name, added").fetchall()
        return [*BUILTIN_MODELS, *(ModelManifest.model_validate(json.loads(r[0])) for r in rows)]

    def remove(self, engine: str) -> ModelManifest:
        """Forget a version (its blobs stay while another version uses them)."""
        manifest = self.get(engine)
        if manifest.builtin:
            raise ServingError(f"{manifest.ref} is built in and cannot be removed")
        with self._lock:
            self._db.execute(
                "DELETE FROM models WHERE name=? AND version=?", (manifest.name, manifest.version)
            )
        used = {h for m in self.list() for h in m.files.values()}
        for digest in manifest.files.values():
            if digest not in used:
                self.blob_path(digest).unlink(missing_ok=True)
        return manifest

    def files(self, manifest: ModelManifest) -> dict[str, Path]:
        """The stored paths of a model's files; ServingError if one went missing."""
        paths = {role: self.blob_path(h) for role, h in manifest.files.items()}
        for role, path in paths.items():
            if not path.is_file():
                raise ServingError(f"{manifest.ref}: its {role} file {path.name} is missing")
        return paths
