"""Reading a pipeline file: YAML (or JSON, by the ``.json`` extension) into plain data.

Only what JSON can carry comes out (objects, lists, text, finite numbers, booleans, null),
since the pipeline travels as JSON: a YAML date or a custom tag is refused with its line,
rather than sent as something the node cannot read. Anchors and merge keys (``<<: *base``)
work; the size of the expanded document is bounded (a file of aliases cannot blow up), and
so is its depth. A key given twice is an error, not "the last one wins".

Alongside the data comes the 1-based line of every key and list item, by its path, so later
checks can point at the line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from meshops.pipelines._issues import PipelineFileError, PipelineIssue

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_VALUES", "RawPath", "read_document"]

MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 100_000
"""Values in the document once aliases are expanded."""
MAX_DEPTH = 64

RawPath = tuple[Any, ...]
"""Keys and list positions as written in the file."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_JSON_SCALARS = (str, int, float, bool, type(None))


class _Refused(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_document(path: Path) -> tuple[Any, dict[RawPath, int]]:
    """The file's data and the line of each key/item; PipelineFileError naming file and line."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Refused(f"file too large ({size} bytes; at most {MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise PipelineFileError(path, [PipelineIssue("", f"cannot read: {exc.strerror}")]) from None
    except _Refused as exc:
        raise PipelineFileError(path, [PipelineIssue("", exc.message)]) from None
    try:
        text = _decode(raw)
        if path.suffix.lower() == ".json":
            return _read_json(text), {}
        return _read_yaml(text)
    except _Refused as exc:
        raise PipelineFileError(path, [PipelineIssue("", exc.message, exc.line)]) from None


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _Refused("not UTF-8 text", line) from None


# ---- JSON ----------------------------------------------------------------------------------


def _read_json(text: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _Refused(f"invalid JSON: key {key!r} appears twice in one object")
            result[key] = value
        return result

    def no_constant(name: str) -> Any:
        raise _Refused(f"invalid JSON: {name} is not a number JSON allows")

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise _Refused(f"invalid JSON: nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        value = list(value.values())
    children = value if isinstance(value, list) else ()
    return max((_depth(child, level + 1) for child in children), default=level)


# ---- YAML ----------------------------------------------------------------------------------


def _read_yaml(text: str) -> tuple[Any, dict[RawPath, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        builder = _Builder(loader)
        return builder.build(node, (), 0), builder.lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed"
        column = f" (column {mark.column + 1})" if mark is not None else ""
        line = mark.line + 1 if mark is not None else None
        raise _Refused(f"invalid YAML: {problem}{column}", line) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


class _Builder:
    """Plain data from YAML nodes, with the line of every key and item."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[RawPath, int] = {}
        self.count = 0
        self.flattened: set[int] = set()

    def build(self, node: Node, path: RawPath, depth: int) -> Any:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_VALUES:
            raise _Refused(f"too many values once aliases are expanded (at most {MAX_VALUES})")
        if depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", line)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            items = []
            for i, child in enumerate(node.value):
                self.lines[(*path, i)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, i), depth + 1))
            return items
        if isinstance(node, MappingNode) and node.tag == _MAP_TAG:
            self._flatten(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:  # merged keys first: the node's own win
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, ScalarNode):
                    raise _Refused("a key must be text, not a list or mapping", key_line)
                key = self._scalar(key_node)
                self.lines[(*path, key)] = key_line
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        raise _Refused(f"unsupported YAML tag {node.tag}", line)

    def _flatten(self, node: MappingNode) -> None:
        """Refuse a key written twice, then resolve merge keys (``<<``), once per node."""
        if id(node) in self.flattened:
            return
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                if (key_node.tag, key_node.value) in seen:
                    line = key_node.start_mark.line + 1
                    raise _Refused(f"key {key_node.value!r} appears twice in one mapping", line)
                seen.add((key_node.tag, key_node.value))
        self.loader.flatten_mapping(node)
        self.flattened.add(id(node))

    def _scalar(self, node: ScalarNode) -> Any:
        value = self.loader.construct_object(node)
        line = node.start_mark.line + 1
        if not isinstance(value, _JSON_SCALARS):
            kind = type(value).__name__
            raise _Refused(f"{node.value!r} reads as a {kind}; quote it to keep it as text", line)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused(f"{node.value!r} is not a finite number", line)
        return value
