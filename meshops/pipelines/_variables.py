"""``${VAR}`` parameters in pipeline files, so one file serves many deployments.

``${NAME}`` is replaced by the variable's value, ``${NAME:-default}`` by the default when the
variable is unset or empty (as in the shell), and ``$${`` stands for a literal ``${``. A bare
``$NAME`` is left alone (passwords and regexes keep their dollars). Only values are
substituted, never keys, and the result is always text: the schemas turn ``"5"`` into a number
where a number is expected. Values come from the caller's mapping first (``--set``), then the
environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from meshops.errors import ConfigError
from meshops.pipelines._issues import PipelineIssue, join_path

__all__ = ["Lookup", "lookup_in", "parse_assignments", "substitute"]

Lookup = Callable[[str], str | None]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(rf"({_NAME})(?::-(.*))?", re.DOTALL)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` as ``{"A": "1", "B": "x=y"}``; ConfigError for a malformed item."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(_NAME, name):
            raise ConfigError(f"expected NAME=VALUE (NAME: letters, digits, _), got {item!r}")
        values[name] = value
    return values


def lookup_in(*sources: Mapping[str, str]) -> Lookup:
    """A lookup trying each mapping in turn (the first one that has the name wins)."""

    def lookup(name: str) -> str | None:
        for source in sources:
            if name in source:
                return source[name]
        return None

    return lookup


def substitute(
    value: Any, lookup: Lookup, path: str, issues: list[PipelineIssue], lines: Mapping[str, int]
) -> Any:
    """``value`` with every reference in its strings replaced; problems go to ``issues``."""
    if isinstance(value, str):
        return _text(value, lookup, path, issues, lines.get(path))
    if isinstance(value, dict):
        return {
            key: substitute(item, lookup, join_path(path, key), issues, lines)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            substitute(item, lookup, join_path(path, i), issues, lines)
            for i, item in enumerate(value)
        ]
    return value


def _text(
    text: str, lookup: Lookup, path: str, issues: list[PipelineIssue], line: int | None
) -> str:
    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            issues.append(PipelineIssue(path, "'${' is never closed by '}'", line))
            return whole
        parsed = _BODY.fullmatch(body)
        if parsed is None:
            message = f"bad reference {whole!r}: write ${{NAME}} or ${{NAME:-default}}"
            issues.append(PipelineIssue(path, message, line))
            return whole
        name, default = parsed.groups()
        found = lookup(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        message = (
            f"variable {name} is not set and has no default "
            f"(give it a value, or write ${{{name}:-default}})"
        )
        issues.append(PipelineIssue(path, message, line))
        return ""

    return _REFERENCE.sub(replace, text)
