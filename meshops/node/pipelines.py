"""Pipelines on a node: validate, merge, start, update and stop captures and instances.

``apply`` takes a pipeline config as it arrives (whole or delta), merges it with what runs,
validates *everything* (capture type and settings, every plugin signature and instance
config) before touching anything, and only then swaps the running parts. A bad config is
refused with an error naming the field, and what ran before keeps running.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from meshops._validation import describe_validation_error, validate_wire
from meshops.capture.base import CaptureConfig, CaptureItem, DataCapture
from meshops.errors import ConfigError, MeshOpsError, PluginError, ServingError
from meshops.node.instance import CommandOutcome, InstanceRunner
from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginContext
from meshops.plugins.registry import Registry

if TYPE_CHECKING:
    from meshops.serving import ServingManager

__all__ = [
    "NODE_KEYS",
    "InstanceKey",
    "PipelineEvents",
    "PipelineManager",
    "capture_part",
    "merge_pipeline",
    "plugins_list",
]

log = logging.getLogger(__name__)

InstanceKey = tuple[str, str]  # (SIGNATURE, INSTANCE_ID)
NODE_KEYS = (
    "INITIATOR_ADDR",
    "INITIATOR_ID",
    "MODIFIED_BY_ADDR",
    "MODIFIED_BY_ID",
    "SESSION_ID",
    "LAST_UPDATE_TIME",
)


@dataclass
class PipelineEvents:
    """How the manager talks back to the node (payloads and notifications)."""

    emit: Callable[[str, str, str, Mapping[str, Any]], None]
    """(pipeline, signature, instance_id, body): a plugin payload."""
    instance_error: Callable[[str, str, str, str], None]
    """(pipeline, signature, instance_id, message): a hook raised."""
    capture_error: Callable[[str, str], None]
    """(pipeline, message): the capture failed."""
    command_done: Callable[[str, str, str, CommandOutcome], None]


@dataclass
class _Pipeline:
    name: str
    config: dict[str, Any]
    capture: DataCapture
    instances: dict[InstanceKey, InstanceRunner] = field(default_factory=dict)


def _instances(config: Mapping[str, Any]) -> dict[InstanceKey, dict[str, Any]]:
    """The instance configs of a pipeline config, by (SIGNATURE, INSTANCE_ID)."""
    found: dict[InstanceKey, dict[str, Any]] = {}
    plugins = config.get("PLUGINS") or []
    if not isinstance(plugins, list):
        raise ConfigError("PLUGINS: must be a list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, Mapping) or not isinstance(plugin.get("SIGNATURE"), str):
            raise ConfigError(f"PLUGINS.{i}.SIGNATURE: must be a string")
        instances = plugin.get("INSTANCES") or []
        if not isinstance(instances, list):
            raise ConfigError(f"PLUGINS.{i}.INSTANCES: must be a list")
        for j, inst in enumerate(instances):
            iid = inst.get("INSTANCE_ID") if isinstance(inst, Mapping) else None
            if not isinstance(iid, str) or not iid:
                raise ConfigError(f"PLUGINS.{i}.INSTANCES.{j}.INSTANCE_ID: must be a string")
            found[(plugin["SIGNATURE"].upper(), iid)] = dict(inst)
    return found


def plugins_list(instances: Mapping[InstanceKey, Mapping[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for (signature, _), inst in instances.items():
        grouped.setdefault(signature, []).append(dict(inst))
    return [{"SIGNATURE": sig, "INSTANCES": insts} for sig, insts in grouped.items()]


def merge_pipeline(old: Mapping[str, Any] | None, delta: Mapping[str, Any]) -> dict[str, Any]:
    """``delta`` applied to ``old``: top-level keys replaced, instances merged key by key.

    Instances absent from the delta keep running; remove one with
    ``UPDATE_PIPELINE_INSTANCE`` and ``{"DELETE": true}`` or by archiving the pipeline.
    """
    merged = copy.deepcopy(dict(old or {}))
    for key, value in delta.items():
        if key != "PLUGINS":
            merged[key] = copy.deepcopy(value)
    if "PLUGINS" in delta:
        instances = _instances(merged)
        for key, inst in _instances(delta).items():
            instances[key] = {**instances.get(key, {}), **copy.deepcopy(inst)}
        merged["PLUGINS"] = plugins_list(instances)
    return merged


class PipelineManager:
    """Owns every pipeline's capture and instances on one node."""

    def __init__(
        self,
        node_alias: str,
        plugins: Registry[BusinessPlugin],
        captures: Registry[DataCapture],
        events: PipelineEvents,
        *,
        node_address: str | None = None,
        serving: ServingManager | None = None,
    ) -> None:
        self.node_alias = node_alias
        self.serving = serving
        self._owners = itertools.count(1)
        self.node_address = node_address
        self.plugins = plugins
        self.captures = captures
        self.events = events
        self._pipelines: dict[str, _Pipeline] = {}
        self._lock = threading.RLock()

    # ---- queries -------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._pipelines)

    def configs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: copy.deepcopy(p.config) for name, p in self._pipelines.items()}

    def config(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            pipeline = self._pipelines.get(name)
            return copy.deepcopy(pipeline.config) if pipeline else None

    def statuses(self) -> list[dict[str, Any]]:
        """One row per instance, as heartbeats and SET_CONFIG report them."""
        with self._lock:
            rows = []
            for p in self._pipelines.values():
                for (signature, iid), runner in p.instances.items():
                    rows.append(
                        {
                            "STREAM_ID": p.name,
                            "SIGNATURE": signature,
                            "INSTANCE_ID": iid,
                            "RUNS": runner.runs,
                            "ERRORS": runner.errors,
                            "LAST_ERROR": runner.last_error,
                            "ALIVE": runner.alive,
                        }
                    )
            return rows

    # ---- validation ----------------------------------------------------------------------

    def validate(
        self, config: Mapping[str, Any]
    ) -> tuple[type[DataCapture], CaptureConfig, dict[InstanceKey, PluginConfig]]:
        """Check a whole (merged) pipeline config: the capture and every instance. A
        ConfigError or PluginError names every problem found (joined by ``; ``)."""
        problems: list[MeshOpsError] = []
        capture_cls = capture_config = None
        type_name = config.get("TYPE")
        try:
            if not isinstance(type_name, str):
                raise ConfigError("TYPE: the data capture type is required (e.g. 'Void')")
            capture_cls = self.captures.get(type_name)
            capture_config = validate_wire(
                capture_cls.CONFIG,
                config,
                what=f"pipeline {config.get('NAME')!r}",
                error=ConfigError,
            )
        except MeshOpsError as exc:
            problems.append(exc)
        typed: dict[InstanceKey, PluginConfig] = {}
        for key, raw in _instances(config).items():
            try:
                plugin_cls = self.plugins.get(key[0])
                typed[key] = plugin_cls.validate_config(raw)
                self._check_engine(key, typed[key])
            except MeshOpsError as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            kind = ConfigError if all(isinstance(p, ConfigError) for p in problems) else PluginError
            raise kind("; ".join(str(p) for p in problems)) from problems[0]
        assert capture_cls is not None and capture_config is not None
        return capture_cls, capture_config, typed

    def _check_engine(self, key: InstanceKey, config: PluginConfig) -> None:
        if config.ai_engine is None:
            return
        where = f"{key[0]}/{key[1]}: AI_ENGINE {config.ai_engine!r}"
        if self.serving is None:
            raise PluginError(f"{where}: this node serves no models")
        try:
            self.serving.resolve(config.ai_engine, config.ai_engine_params)
        except ServingError as exc:
            raise PluginError(f"{where}: {exc}") from exc
        except ValidationError as exc:
            detail = describe_validation_error(exc, "AI_ENGINE_PARAMS")
            raise PluginError(f"{key[0]}/{key[1]}: {detail}") from exc

    # ---- changes -------------------------------------------------------------------------

    def apply(
        self, config: dict[str, Any], *, store: Callable[[dict[str, Any]], None]
    ) -> list[InstanceKey]:
        """Merge, validate, ``store`` the result, then (re)start what changed.

        Returns the instances that are new or whose config changed (each deserves a
        PLUGIN_CONFIG_OK). Raises ConfigError/PluginError before anything changes.
        """
        name = config.get("NAME")
        if not isinstance(name, str) or not name:
            raise ConfigError("NAME: the pipeline name is required")
        with self._lock:
            current = self._pipelines.get(name)
            merged = merge_pipeline(current.config if current else None, config)
            capture_cls, capture_config, typed = self.validate(merged)
            old_instances = _instances(current.config) if current else {}
            new_instances = _instances(merged)
            running = current.instances if current else {}
            rebuilt = {  # a new model or model settings: a new runner on a new server
                key
                for key in new_instances
                if key in running
                and _engine_part(old_instances.get(key)) != _engine_part(new_instances[key])
            }
            fresh: dict[InstanceKey, InstanceRunner] = {}
            try:  # built before anything changes: a failing constructor refuses the config
                for key in new_instances:
                    if key not in running or key in rebuilt:
                        fresh[key] = self._make_runner(name, key, typed[key])
            except Exception:
                for runner in fresh.values():
                    runner.release_engine()
                raise
            store(merged)
            capture_changed = current is None or capture_part(current.config) != capture_part(
                merged
            )
            if current is not None and capture_changed:
                current.capture.stop()
            if current is None:
                pipeline = _Pipeline(name, merged, self._capture(capture_cls, capture_config))
                self._pipelines[name] = pipeline
            else:
                pipeline = current
                pipeline.config = merged
                if capture_changed:
                    pipeline.capture = self._capture(capture_cls, capture_config)
            changed: list[InstanceKey] = []
            for key, raw in new_instances.items():
                if key in fresh:
                    if key in pipeline.instances:
                        pipeline.instances[key].stop()
                    pipeline.instances[key] = fresh[key]
                    fresh[key].start()
                    changed.append(key)
                elif old_instances.get(key) != raw:
                    pipeline.instances[key].reconfigure(typed[key])
                    changed.append(key)
            if capture_changed:
                pipeline.capture.start()
            return changed

    def remove_instance(
        self, name: str, key: InstanceKey, *, store: Callable[[dict], None]
    ) -> None:
        with self._lock:
            pipeline = self._require(name)
            if key not in pipeline.instances:
                raise ConfigError(f"pipeline {name!r} has no instance {key[0]}/{key[1]}")
            instances = _instances(pipeline.config)
            instances.pop(key, None)
            pipeline.config["PLUGINS"] = plugins_list(instances)
            store(pipeline.config)
            pipeline.instances.pop(key).stop()

    def stop_pipeline(self, name: str) -> bool:
        """Stop and forget one pipeline (archive/delete); False if it was not running."""
        with self._lock:
            pipeline = self._pipelines.pop(name, None)
        if pipeline is None:
            return False
        pipeline.capture.stop()
        for runner in pipeline.instances.values():
            runner.stop()
        return True

    def stop_all(self) -> None:
        for name in self.names():
            self.stop_pipeline(name)

    def instance_command(self, name: str, key: InstanceKey, command: Any, params: dict) -> None:
        with self._lock:
            runner = self._require(name).instances.get(key)
        if runner is None:
            raise ConfigError(f"pipeline {name!r} has no instance {key[0]}/{key[1]}")
        runner.command(command, params)

    def feed(self, name: str, data: Any) -> None:
        """Data sent to an on-demand pipeline by command."""
        with self._lock:
            capture = self._require(name).capture
        capture.feed(data)

    # ---- internals -----------------------------------------------------------------------

    def _require(self, name: str) -> _Pipeline:
        pipeline = self._pipelines.get(name)
        if pipeline is None:
            raise ConfigError(f"no pipeline named {name!r} on this node")
        return pipeline

    def _capture(self, cls: type[DataCapture], config: CaptureConfig) -> DataCapture:
        name = config.name

        def sink(item: CaptureItem) -> None:
            with self._lock:
                pipeline = self._pipelines.get(name)
                runners = list(pipeline.instances.values()) if pipeline else []
            for runner in runners:
                runner.offer(item)

        return cls(config, sink, on_error=lambda msg: self.events.capture_error(name, msg))

    def _make_runner(self, name: str, key: InstanceKey, config: PluginConfig) -> InstanceRunner:
        signature, iid = key
        plugin_cls = self.plugins.get(signature)
        context = PluginContext(
            node_alias=self.node_alias,
            pipeline=name,
            signature=signature,
            instance_id=iid,
            node_addr=self.node_address,
            emit=lambda body: self.events.emit(name, signature, iid, body),
            log=logging.LoggerAdapter(
                logging.getLogger(f"meshops.plugin.{signature}"),
                {"node": self.node_alias, "pipeline": name, "instance": iid},
            ),
        )
        try:
            plugin = plugin_cls(context, config)
        except Exception as exc:
            raise PluginError(f"{signature}/{iid}: cannot create the instance: {exc}") from exc
        engine = None
        if config.ai_engine is not None and self.serving is not None:
            owner = f"{name}/{signature}/{iid}#{next(self._owners)}"
            try:
                engine = self.serving.acquire(owner, config.ai_engine, config.ai_engine_params)
            except ServingError as exc:
                raise PluginError(f"{signature}/{iid}: AI_ENGINE: {exc}") from exc
        return InstanceRunner(
            plugin,
            on_error=lambda msg: self.events.instance_error(name, signature, iid, msg),
            on_command_done=lambda outcome: self.events.command_done(name, signature, iid, outcome),
            engine=engine,
        )


def _engine_part(raw: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """What decides an instance's model server: AI_ENGINE and AI_ENGINE_PARAMS."""
    raw = raw or {}
    return raw.get("AI_ENGINE"), raw.get("AI_ENGINE_PARAMS")


def capture_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys that define the capture (everything but plugins and bookkeeping)."""
    return {k: v for k, v in config.items() if k != "PLUGINS" and k not in NODE_KEYS}
