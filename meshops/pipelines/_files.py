"""Pipeline files: the low-code form of a pipeline, read into the config a node receives.

Keys are case-insensitive: the first level of the file, of each plugin entry and of each
instance is turned into the wire's UPPER_CASE (``name`` -> ``NAME``). Deeper mappings (the
value of ``STREAM_CONFIG_METADATA``, a ``REQUEST``...) are kept exactly as written, since their
keys are data. Three keys belong to the file, not to the wire config:

- ``capture``: a mapping of capture settings, merged into the first level (``capture: {url:
  x}`` is ``URL: x``), so a file can keep the capture apart from the pipeline;
- ``node`` (one) or ``nodes`` (a list): where to deploy, aliases or addresses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshops.capture.base import DataCapture
from meshops.pipelines._issues import PipelineFileError, PipelineIssue, join_path
from meshops.pipelines._reader import RawPath, read_document
from meshops.pipelines._validate import count_instances, validate_pipeline
from meshops.pipelines._variables import lookup_in, substitute
from meshops.plugins.base import BusinessPlugin
from meshops.plugins.registry import Registry

__all__ = ["PipelineFile", "load_pipeline", "load_valid_pipeline"]

_CAPTURE = "CAPTURE"
_TARGETS = ("NODE", "NODES")
_LAST_STEP = re.compile(r"(?:\.[^.\[\]]*|\[\d+\])$")


@dataclass(frozen=True)
class PipelineFile:
    """A pipeline read from a file: its wire ``config``, target ``nodes`` and ``source``.

    ``lines`` maps wire paths (``PLUGINS[0].INSTANCES[1]``) to 1-based lines of the file
    (empty for JSON), so problems can point at the line.
    """

    source: Path
    config: dict[str, Any]
    nodes: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        name = self.config.get("NAME")
        return name if isinstance(name, str) else None

    @property
    def instance_count(self) -> int:
        return count_instances(self.config)

    def validate(
        self,
        plugins: Registry[BusinessPlugin] | None = None,
        captures: Registry[DataCapture] | None = None,
    ) -> list[PipelineIssue]:
        """Every problem of the config (see ``validate_pipeline``), with file lines."""
        return [self.locate(issue) for issue in validate_pipeline(self.config, plugins, captures)]

    def locate(self, issue: PipelineIssue) -> PipelineIssue:
        """``issue`` with the line of its path, or of the nearest enclosing one."""
        if issue.line is not None:
            return issue
        path = issue.path
        while path:
            if path in self.lines:
                return PipelineIssue(issue.path, issue.message, self.lines[path])
            path = _LAST_STEP.sub("", path) if _LAST_STEP.search(path) else ""
        return issue


def load_pipeline(
    path: str | Path,
    variables: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
) -> PipelineFile:
    """Read a YAML or JSON pipeline file, substituting ``${VAR}`` from ``variables``, then
    ``environ``. PipelineFileError lists every problem that keeps the file from being read
    (syntax, keys given twice, unset variables); the config itself is checked by
    ``PipelineFile.validate``.
    """
    source = Path(path)
    data, raw_lines = read_document(source)
    wire = _Wire(raw_lines)
    config, targets = wire.pipeline(data)
    lookup = lookup_in(variables or {}, environ)
    config = substitute(config, lookup, "", wire.issues, wire.lines)
    nodes = _nodes(targets, lookup, wire)
    if wire.issues:
        raise PipelineFileError(source, wire.issues)
    return PipelineFile(source, config, nodes, wire.lines)


def load_valid_pipeline(
    path: str | Path,
    variables: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    plugins: Registry[BusinessPlugin] | None = None,
    captures: Registry[DataCapture] | None = None,
) -> PipelineFile:
    """``load_pipeline`` then ``validate``: the file, or PipelineFileError with every problem.

    What sends a pipeline (``meshops deploy``, the SDK) calls this, so that an invalid file
    is never sent.
    """
    pipeline = load_pipeline(path, variables, environ=environ)
    issues = pipeline.validate(plugins, captures)
    if issues:
        raise PipelineFileError(pipeline.source, issues)
    return pipeline


# ---- file keys to wire keys ----------------------------------------------------------------

Level = Callable[[Any, RawPath, str], Any]


class _Wire:
    """Turns file data into the wire config, keeping the line of every wire path."""

    def __init__(self, raw_lines: Mapping[RawPath, int]) -> None:
        self.raw_lines = raw_lines
        self.lines: dict[str, int] = {}
        self.issues: list[PipelineIssue] = []

    def pipeline(self, data: Any) -> tuple[dict[str, Any], tuple[str, Any] | None]:
        """The wire config and the targets (``NODE``/``NODES`` and their value), if any."""
        if data is None:
            self.issues.append(PipelineIssue("", "the file is empty; expected NAME, TYPE, PLUGINS"))
            return {}, None
        if not isinstance(data, dict):
            kind = type(data).__name__
            self.issues.append(PipelineIssue("", f"expected a mapping (NAME, TYPE...), not {kind}"))
            return {}, None
        config: dict[str, Any] = {}
        written: dict[str, str] = {}
        targets: tuple[str, Any] | None = None
        for key, value in data.items():
            upper = self._key(key, (key,), "")
            if upper is None:
                continue
            if upper == _CAPTURE:
                if not isinstance(value, dict):
                    self._issue(upper, (key,), "must be a mapping of capture settings")
                    continue
                for sub, sub_value in value.items():
                    sub_upper = self._key(sub, (key, sub), upper)
                    if sub_upper is not None:
                        self._put(config, written, sub_upper, sub_value, (key, sub), self._top)
            elif upper in _TARGETS:
                if targets is not None:
                    self._issue(upper, (key,), "give NODE (one target) or NODES (a list), not both")
                else:
                    targets = (upper, self._plain(value, (key,), upper))
            else:
                self._put(config, written, upper, value, (key,), self._top)
        return config, targets

    def _top(self, upper: str, value: Any, raw: RawPath) -> Any:
        if upper == "PLUGINS":
            return self._list(value, raw, upper, self._plugin)
        return self._plain(value, raw, upper)

    def _plugin(self, value: Any, raw: RawPath, path: str) -> Any:
        def level(upper: str, item: Any, item_raw: RawPath) -> Any:
            where = join_path(path, upper)
            if upper == "INSTANCES":
                return self._list(item, item_raw, where, self._instance)
            return self._plain(item, item_raw, where)

        return self._mapping(value, raw, path, level)

    def _instance(self, value: Any, raw: RawPath, path: str) -> Any:
        return self._mapping(
            value, raw, path, lambda upper, v, r: self._plain(v, r, join_path(path, upper))
        )

    def _mapping(
        self, value: Any, raw: RawPath, path: str, level: Callable[[str, Any, RawPath], Any]
    ) -> Any:
        """A mapping whose keys are upper-cased (plugin entries, instances)."""
        if not isinstance(value, dict):
            return self._plain(value, raw, path)
        out: dict[str, Any] = {}
        written: dict[str, str] = {}
        for key, item in value.items():
            upper = self._key(key, (*raw, key), path)
            if upper is not None:
                self._put(out, written, upper, item, (*raw, key), level, path)
        return out

    def _list(self, value: Any, raw: RawPath, path: str, item: Level) -> Any:
        if not isinstance(value, list):
            return self._plain(value, raw, path)
        out = []
        for i, element in enumerate(value):
            self._line(join_path(path, i), (*raw, i))
            out.append(item(element, (*raw, i), join_path(path, i)))
        return out

    def _plain(self, value: Any, raw: RawPath, path: str) -> Any:
        """A value whose keys stay as written (checked to be text, as JSON needs)."""
        self._line(path, raw)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self._issue(path, (*raw, key), f"key {key!r} must be text (quote it)")
                    continue
                out[key] = self._plain(item, (*raw, key), join_path(path, key))
            return out
        if isinstance(value, list):
            return [
                self._plain(item, (*raw, i), join_path(path, i)) for i, item in enumerate(value)
            ]
        return value

    def _put(
        self,
        out: dict[str, Any],
        written: dict[str, str],
        upper: str,
        value: Any,
        raw: RawPath,
        level: Callable[[str, Any, RawPath], Any],
        parent: str = "",
    ) -> None:
        spelled = ".".join(str(part) for part in raw) if not parent else str(raw[-1])
        where = join_path(parent, upper)
        if upper in out:
            self._issue(where, raw, f"given twice: as {written[upper]!r} and {spelled!r}")
            return
        written[upper] = spelled
        self._line(where, raw)
        out[upper] = level(upper, value, raw)

    def _key(self, key: Any, raw: RawPath, parent: str) -> str | None:
        if isinstance(key, str) and key:
            return key.upper()
        self._issue(parent, raw, f"key {key!r} must be a name (text)")
        return None

    def _line(self, path: str, raw: RawPath) -> None:
        if raw in self.raw_lines:
            self.lines.setdefault(path, self.raw_lines[raw])

    def _issue(self, path: str, raw: RawPath, message: str) -> None:
        self.issues.append(PipelineIssue(path, message, self.raw_lines.get(raw)))


def _nodes(
    targets: tuple[str, Any] | None,
    lookup: Callable[[str], str | None],
    wire: _Wire,
) -> tuple[str, ...]:
    if targets is None:
        return ()
    key, value = targets
    value = substitute(value, lookup, key, wire.issues, wire.lines)
    values = value if isinstance(value, list) else [value]
    nodes = []
    for i, node in enumerate(values):
        path = join_path(key, i) if isinstance(value, list) else key
        if not isinstance(node, str) or not node.strip():
            message = "must be a node alias or address (text; quote a 0x... address)"
            wire.issues.append(PipelineIssue(path, message, wire.lines.get(path)))
        else:
            nodes.append(node.strip())
    return tuple(nodes)
