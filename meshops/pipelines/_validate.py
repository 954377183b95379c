"""Checking a pipeline config (wire form) against the installed capture types and plugins.

The same models the node uses decide (each capture type's and plugin's ``CONFIG``), so what
passes here passes on a node with the same packages installed. Unlike the node, which
stops at the first bad part, this collects every problem, each with its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from meshops.capture.base import CaptureConfig, DataCapture
from meshops.errors import PluginError
from meshops.pipelines._issues import PipelineIssue, join_path
from meshops.plugins.base import BusinessPlugin
from meshops.plugins.registry import Registry, load_captures, load_plugins

__all__ = ["count_instances", "validate_pipeline"]

_PLUGIN_KEYS = ("SIGNATURE", "INSTANCES")


def validate_pipeline(
    config: Mapping[str, Any],
    plugins: Registry[BusinessPlugin] | None = None,
    captures: Registry[DataCapture] | None = None,
) -> list[PipelineIssue]:
    """Every problem of a whole pipeline config (wire keys); an empty list when it is valid.

    ``plugins`` and ``captures`` default to what is installed (the entry points).
    """
    if not isinstance(config, Mapping):
        return [PipelineIssue("", f"a pipeline is a mapping, not {type(config).__name__}")]
    plugins = load_plugins() if plugins is None else plugins
    captures = load_captures() if captures is None else captures
    return [*_capture_issues(config, captures), *_plugin_issues(config, plugins)]


def count_instances(config: Mapping[str, Any]) -> int:
    """How many plugin instances a pipeline config declares (as far as it can be read)."""
    plugins = config.get("PLUGINS")
    if not isinstance(plugins, list):
        return 0
    return sum(
        len(plugin["INSTANCES"])
        for plugin in plugins
        if isinstance(plugin, Mapping) and isinstance(plugin.get("INSTANCES"), list)
    )


def _capture_issues(
    config: Mapping[str, Any], captures: Registry[DataCapture]
) -> list[PipelineIssue]:
    issues: list[PipelineIssue] = []
    model: type[CaptureConfig] = CaptureConfig  # still checks NAME & co. when TYPE is bad
    type_name = config.get("TYPE")
    installed = ", ".join(sorted(cls.TYPE for cls in captures.classes.values())) or "none"
    if type_name is None or not isinstance(type_name, str):
        what = "required" if type_name is None else "must be a capture type name"
        issues.append(PipelineIssue("TYPE", f"{what} (installed: {installed})"))
    else:
        try:
            model = captures.get(type_name).CONFIG
        except PluginError as exc:
            issues.append(PipelineIssue("TYPE", str(exc)))
    reported = {issue.path for issue in issues}
    found = _model_issues(model, config, "")
    return issues + [issue for issue in found if issue.path not in reported]


def _plugin_issues(
    config: Mapping[str, Any], plugins: Registry[BusinessPlugin]
) -> list[PipelineIssue]:
    entries = config.get("PLUGINS")
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [PipelineIssue("PLUGINS", "must be a list of {SIGNATURE, INSTANCES} entries")]
    issues: list[PipelineIssue] = []
    seen: dict[tuple[str, str], str] = {}
    for i, entry in enumerate(entries):
        path = join_path("PLUGINS", i)
        if not isinstance(entry, Mapping):
            issues.append(PipelineIssue(path, "must be a mapping with SIGNATURE and INSTANCES"))
            continue
        plugin_cls = _plugin_class(entry.get("SIGNATURE"), plugins, path, issues)
        for key in entry:
            if key not in _PLUGIN_KEYS:
                issues.append(
                    PipelineIssue(
                        join_path(path, str(key)),
                        "not a plugin key (SIGNATURE, INSTANCES); "
                        "instance settings go in each item of INSTANCES",
                    )
                )
        signature = entry.get("SIGNATURE")
        instances = entry.get("INSTANCES")
        instances_path = join_path(path, "INSTANCES")
        if not isinstance(instances, list) or not instances:
            issues.append(PipelineIssue(instances_path, "must be a non-empty list of instances"))
            continue
        for j, instance in enumerate(instances):
            here = join_path(instances_path, j)
            if not isinstance(instance, Mapping):
                issues.append(PipelineIssue(here, "must be a mapping of settings with INSTANCE_ID"))
                continue
            iid = instance.get("INSTANCE_ID")
            if not isinstance(iid, str) or not iid:
                message = (
                    "required: the instance's id (text, unique within the plugin)"
                    if iid is None
                    else f"must be non-empty text, not {iid!r} (quote numbers in YAML)"
                )
                issues.append(PipelineIssue(join_path(here, "INSTANCE_ID"), message))
            elif isinstance(signature, str):
                key = (signature.upper(), iid)
                if key in seen:
                    message = f"instance {iid!r} of {key[0]} is declared twice (also {seen[key]})"
                    issues.append(PipelineIssue(join_path(here, "INSTANCE_ID"), message))
                else:
                    seen[key] = here
            if plugin_cls is not None:
                issues += _model_issues(plugin_cls.CONFIG, instance, here)
    return issues


def _plugin_class(
    signature: Any, plugins: Registry[BusinessPlugin], path: str, issues: list[PipelineIssue]
) -> type[BusinessPlugin] | None:
    where = join_path(path, "SIGNATURE")
    if not isinstance(signature, str) or not signature:
        installed = ", ".join(sorted(plugins.classes)) or "none"
        what = "required" if signature is None else "must be a plugin signature"
        issues.append(PipelineIssue(where, f"{what} (installed: {installed})"))
        return None
    try:
        return plugins.get(signature)
    except PluginError as exc:
        issues.append(PipelineIssue(where, str(exc)))
        return None


def _model_issues(model: type[BaseModel], raw: Mapping[str, Any], path: str) -> list[PipelineIssue]:
    try:
        model.model_validate(dict(raw))
    except ValidationError as exc:
        return [PipelineIssue(_loc_path(path, err["loc"]), err["msg"]) for err in exc.errors()]
    return []


def _loc_path(base: str, loc: Sequence[str | int]) -> str:
    for part in loc:
        base = join_path(base, part)
    return base
