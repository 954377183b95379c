"""Pipeline and plugin-instance configs as the SDK handles them, and what a node reports.

Python callers write snake_case keyword arguments (``process_delay=0.5``); on the wire every
config key is UPPER_CASE (``PROCESS_DELAY``). Only the top level of a config is converted;
nested values travel as given, as in the reference SDK.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# the node's own helpers, so client and node group and split configs the same way
from meshops.node.pipelines import NODE_KEYS as _NODE_KEYS
from meshops.node.pipelines import capture_part, plugins_list
from meshops.protocol import Command
from meshops.sdk.transactions import Expect

__all__ = [
    "NODE_KEYS",
    "InstanceInfo",
    "InstanceKey",
    "PipelineInfo",
    "PluginSpec",
    "capture_part",
    "instance_command",
    "instances_of",
    "plan_deploy",
    "plugin_specs",
    "plugins_list",
    "wire_keys",
]

InstanceKey = tuple[str, str]
"""(SIGNATURE, INSTANCE_ID)."""

NODE_KEYS = frozenset(_NODE_KEYS)
"""What a node stamps on the pipelines it stores; never sent back."""


def wire_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys upper-cased; ValueError when two keys become one (``a`` and ``A``)."""
    wired: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"config keys must be non-empty strings, got {key!r}")
        upper = key.upper()
        if upper in wired:
            raise ValueError(f"config key {key!r} given twice (keys are case-insensitive)")
        wired[upper] = value
    return wired


@dataclass(frozen=True)
class PluginSpec:
    """One plugin instance to deploy: ``PluginSpec("ECHO_01", "e1", {"prefix": "hi"})``."""

    signature: str
    instance_id: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("signature", "instance_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"PluginSpec.{name} must be a non-empty string, got {value!r}")

    @property
    def key(self) -> InstanceKey:
        return (self.signature.upper(), self.instance_id)

    def wire(self) -> dict[str, Any]:
        """The instance config as it travels (``INSTANCE_ID`` first)."""
        config = wire_keys(self.config)
        config.pop("INSTANCE_ID", None)
        return {"INSTANCE_ID": self.instance_id, **config}


def _specs_of(item: PluginSpec | Mapping[str, Any]) -> list[PluginSpec]:
    if isinstance(item, PluginSpec):
        return [item]
    if not isinstance(item, Mapping):
        raise TypeError(f"a plugin is a PluginSpec or a dict, not {type(item).__name__}")
    fields = wire_keys(item)
    signature = fields.pop("SIGNATURE", None)
    if "INSTANCES" in fields:  # the wire form: {"SIGNATURE": s, "INSTANCES": [{...}, ...]}
        instances = fields.pop("INSTANCES")
        if fields or not isinstance(instances, list):
            raise ValueError(
                f"plugin {signature!r}: INSTANCES must be a list, alone with SIGNATURE"
            )
        return [
            PluginSpec(signature, wire_keys(inst).get("INSTANCE_ID"), wire_keys(inst))
            for inst in instances
        ]
    return [PluginSpec(signature, fields.pop("INSTANCE_ID", None), fields)]


def plugin_specs(plugins: Iterable[PluginSpec | Mapping[str, Any]]) -> dict[InstanceKey, dict]:
    """Instance configs by key, from specs, flat dicts (``{"signature", "instance_id",
    ...config}``) or wire plugin entries (``{"SIGNATURE", "INSTANCES": [...]}``)."""
    found: dict[InstanceKey, dict[str, Any]] = {}
    for item in plugins:
        for spec in _specs_of(item):
            if spec.key in found:
                raise ValueError(f"instance {spec.key[0]}/{spec.key[1]} is given twice")
            found[spec.key] = spec.wire()
    return found


def instance_command(command: str | Mapping[str, Any], params: Mapping[str, Any], uid: str):
    """An ``INSTANCE_COMMAND``: a string is ``COMMAND_PARAMS[command] = true`` (as given),
    a dict the whole body; ``params`` join ``COMMAND_PARAMS`` UPPER_CASE, and ``SDK_REQUEST``
    (``uid``) lets the instance's reply be told apart."""
    if isinstance(command, Mapping):
        body = copy.deepcopy(dict(command))
        body["COMMAND_PARAMS"] = {**body.get("COMMAND_PARAMS", {}), **wire_keys(params)}
    else:
        body = {"COMMAND_PARAMS": {str(command): True, **wire_keys(params)}}
    return {**body, "SDK_REQUEST": uid}


def instances_of(config: Mapping[str, Any]) -> dict[InstanceKey, dict[str, Any]]:
    """The instances of a pipeline config a node reported; malformed entries are skipped."""
    found: dict[InstanceKey, dict[str, Any]] = {}
    plugins = config.get("PLUGINS")
    for plugin in plugins if isinstance(plugins, list) else []:
        signature = plugin.get("SIGNATURE") if isinstance(plugin, Mapping) else None
        instances = plugin.get("INSTANCES") if isinstance(signature, str) else None
        for inst in instances if isinstance(instances, list) else []:
            if isinstance(inst, Mapping) and isinstance(inst.get("INSTANCE_ID"), str):
                found[(signature.upper(), inst["INSTANCE_ID"])] = dict(inst)
    return found


@dataclass(frozen=True)
class InstanceInfo:
    """One plugin instance a node runs, with the node's status row for it (if any)."""

    signature: str
    instance_id: str
    config: dict[str, Any]
    status: dict[str, Any] | None = None


@dataclass(frozen=True)
class PipelineInfo:
    """A pipeline a node runs, as its SET_CONFIG answer describes it."""

    node: str | None
    node_address: str
    name: str
    capture_type: str | None
    capture: dict[str, Any]
    instances: tuple[InstanceInfo, ...]
    initiator: str | None
    last_update: str | None
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def from_config(
        cls,
        node: str | None,
        node_address: str,
        config: Mapping[str, Any],
        statuses: Iterable[Mapping[str, Any]] = (),
    ) -> PipelineInfo:
        name = str(config.get("NAME"))
        status = {
            (str(s.get("SIGNATURE")).upper(), s.get("INSTANCE_ID")): dict(s)
            for s in statuses
            if isinstance(s, Mapping) and s.get("STREAM_ID") == name
        }
        initiator = config.get("INITIATOR_ADDR")
        updated = config.get("LAST_UPDATE_TIME")
        return cls(
            node=node,
            node_address=node_address,
            name=name,
            capture_type=config.get("TYPE") if isinstance(config.get("TYPE"), str) else None,
            capture=capture_part(config),
            instances=tuple(
                InstanceInfo(sig, iid, inst, status.get((sig, iid)))
                for (sig, iid), inst in instances_of(config).items()
            ),
            initiator=initiator if isinstance(initiator, str) else None,
            last_update=updated if isinstance(updated, str) else None,
            config=dict(config),
        )


def plan_deploy(
    capture: Mapping[str, Any],
    instances: Mapping[InstanceKey, Mapping[str, Any]],
    done_capture: Mapping[str, Any] | None,
    done: Mapping[InstanceKey, Mapping[str, Any]],
) -> tuple[Command, Any, list[Expect]] | None:
    """The command that takes a pipeline from ``done`` (confirmed) to the staged state, and
    the confirmations it earns; None when nothing changed (docs/sdk-interop.md section 3)."""
    name = str(capture["NAME"])
    changed = {k: c for k, c in instances.items() if done.get(k) != c}
    expected = [Expect.pipeline_ok(name)]
    expected += [Expect.instance_ok(name, sig, iid) for sig, iid in changed]
    if done_capture == capture:
        if not changed:
            return None
        if all(key in done for key in changed):
            items = []
            for (sig, iid), config in changed.items():
                delta = {k: v for k, v in config.items() if done[(sig, iid)].get(k) != v}
                delta.pop("INSTANCE_ID", None)
                items.append(
                    {
                        "NAME": name,
                        "SIGNATURE": sig,
                        "INSTANCE_ID": iid,
                        "INSTANCE_CONFIG": {"INSTANCE_ID": iid, **delta},
                    }
                )
            return Command.BATCH_UPDATE_PIPELINE_INSTANCE, items, expected
    whole = {**capture, "PLUGINS": plugins_list(instances)}
    return Command.UPDATE_CONFIG, copy.deepcopy(whole), expected
