"""``StructuredFile``: rows of a CSV or JSON-lines file, one item per row.

For replaying sensor logs and tabular data sets through a pipeline. ``FORMAT`` is taken
from the extension (``.csv``, ``.jsonl``/``.ndjson``) unless set. A CSV row becomes a dict
keyed by the header (values stay strings: CSV has no types); a JSON line must be an object
and keeps its JSON types. The file is read lazily, one row per tick.

A malformed line (bad JSON, a non-object, a wrong number of CSV fields, bytes that are not
valid in ``ENCODING``) is skipped, counted in ``skipped`` and reported through ``on_error``
naming the file and line; the capture goes on. Failing the whole capture instead would make
the base re-open the file and replay every row already delivered. Only the first
``MAX_REPORTS`` bad lines of a pass are reported one by one, so a broken file cannot flood
the node's notifications. At the end the capture finishes, or with ``LOOP`` starts again
(unless a whole pass gave no good row, which would only spin).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meshops.capture._files import local_path, require_readable
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.errors import PluginError

__all__ = ["StructuredFileCapture", "StructuredFileConfig", "format_for"]

log = logging.getLogger(__name__)

Format = Literal["csv", "jsonl"]
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_REPORTS = 20

Row = tuple[int, dict[str, Any] | None, str | None]
"""(line number, the row or None, the problem or None)."""


def format_for(path: Path, declared: str) -> Format:
    """The declared format, or the one the extension names; ValueError naming ``FORMAT``."""
    if declared != "auto":
        return "csv" if declared == "csv" else "jsonl"
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise ValueError(
            f"FORMAT: cannot tell the format of {path.name!r} from its extension; "
            "set FORMAT to 'csv' or 'jsonl'"
        )
    return found


class StructuredFileConfig(CaptureConfig):
    """``URL`` (path), ``FORMAT``, ``LOOP``, ``DELIMITER`` (CSV) and ``ENCODING``."""

    url: str = Field(min_length=1, description="Path of the CSV or JSON-lines file.")
    format: Literal["auto", "csv", "jsonl", "ndjson"] = Field(
        default="auto", description="'auto': from the extension (.csv, .jsonl, .ndjson)."
    )
    loop: bool = Field(default=False, description="Start again at the end instead of finishing.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV only.")
    encoding: str = Field(
        default="utf-8", description="An ASCII-compatible text encoding; a BOM is ignored."
    )

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        if "\n".encode(value) != b"\n":  # lines are split as bytes before decoding
            raise ValueError(f"{value!r} is not ASCII-compatible (use utf-8, latin-1, cp1252...)")
        return value

    @model_validator(mode="after")
    def _format_known(self) -> Self:
        try:
            format_for(local_path(self.url), self.format)
        except ValueError as exc:
            raise PydanticCustomError("file_format", str(exc)) from exc
        return self


class StructuredFileCapture(DataCapture):
    """One row per tick; ``metadata``: ``url``, ``format``, ``line`` (1-based), ``loops``."""

    TYPE: ClassVar[str] = "StructuredFile"
    CONFIG: ClassVar[type[CaptureConfig]] = StructuredFileConfig
    config: StructuredFileConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = local_path(self.config.url)
        self._format = format_for(self._path, self.config.format)
        self._file: IO[bytes] | None = None
        self._rows: Iterator[Row] = iter(())
        self._loops = 0
        self._good = 0
        self._reported = 0
        self.skipped = 0
        """Malformed lines skipped so far."""

    def open(self) -> None:
        self._loops = 0
        self._start()
        log.info("capture %s: reading %s (%s)", self.config.name, self._path, self._format)

    def _start(self) -> None:
        require_readable(self._path)
        self._file = self._path.open("rb")
        lines = _Lines(self._file, self._path, self.config.encoding)
        self._rows = (
            _jsonl_rows(lines)
            if self._format == "jsonl"
            else _csv_rows(lines, self.config.delimiter)
        )
        self._good = 0
        self._reported = 0

    def read(self) -> CaptureItem | None:
        while True:
            entry = next(self._rows, None)
            if entry is None:
                if not self.config.loop:
                    log.info("capture %s: end of %s", self.config.name, self._path)
                    return None
                if self._good == 0:
                    log.warning("capture %s: no valid row in %s", self.config.name, self._path)
                    return None
                self.close()
                self._start()
                self._loops += 1
                continue
            line, row, problem = entry
            if problem is not None:
                self._skip(line, problem)
                continue
            self._good += 1
            metadata = {
                "url": str(self._path),
                "format": self._format,
                "line": line,
                "loops": self._loops,
            }
            return CaptureItem(data=row, metadata=metadata)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._rows = iter(())

    def _skip(self, line: int, problem: str) -> None:
        self.skipped += 1
        self._reported += 1
        if self._reported > MAX_REPORTS:
            return
        message = f"capture {self.config.name} ({self.TYPE}): {self._path}:{line}: {problem}"
        if self._reported == MAX_REPORTS:
            message += " (further bad lines in this pass are only counted in 'skipped')"
        log.warning("%s; line skipped", message)
        self._on_error(message)


class _Lines:
    """Physical lines of a binary file, each decoded alone, so one bad line is only skipped."""

    def __init__(self, file: IO[bytes], path: Path, encoding: str) -> None:
        self._file = file
        self.path = path
        self._encoding = encoding
        self.number = 0
        self.bad: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[str]:
        for raw in self._file:
            self.number += 1
            try:
                text = raw.decode(self._encoding)
            except UnicodeDecodeError as exc:
                self.bad.append((self.number, f"not valid {self._encoding}: {exc.reason}"))
                continue
            if self.number == 1:
                text = text.removeprefix("\ufeff")
            yield text

    def drain(self) -> Iterator[Row]:
        """The undecodable lines met so far, as problem rows."""
        while self.bad:
            line, problem = self.bad.pop(0)
            yield line, None, problem


def _jsonl_rows(lines: _Lines) -> Iterator[Row]:
    for text in lines:
        yield from lines.drain()
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield lines.number, None, f"invalid JSON: {exc}"
            continue
        if not isinstance(value, dict):
            yield lines.number, None, f"expected a JSON object, got {type(value).__name__}"
            continue
        yield lines.number, value, None
    yield from lines.drain()


def _csv_rows(lines: _Lines, delimiter: str) -> Iterator[Row]:
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield from lines.drain()
            yield lines.number, None, f"malformed CSV: {exc}"
            continue
        yield from lines.drain()
        if not fields:
            continue
        if header is None:
            if len(set(fields)) != len(fields) or not all(name.strip() for name in fields):
                raise PluginError(
                    f"{lines.path}:{lines.number}: the CSV header needs unique, non-empty names"
                )
            header = fields
            continue
        if len(fields) != len(header):
            yield lines.number, None, f"expected {len(header)} fields, got {len(fields)}"
            continue
        yield lines.number, dict(zip(header, fields, strict=True)), None
    yield from lines.drain()
