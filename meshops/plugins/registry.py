"""Find plugin and capture classes through Python entry points (as pytest finds plugins).

Built-ins register exactly as third-party packages do, in ``pyproject.toml``::

    [project.entry-points."meshops.plugins"]
    CUSTOM_EXEC_01 = "meshops.plugins.custom_exec:CustomExecPlugin"

    [project.entry-points."meshops.capture"]
    Void = "meshops.capture.void:VoidCapture"

The entry-point name is the signature (or capture ``TYPE``); a class is checked when it is
loaded, and a broken third-party package is reported without hiding the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from meshops.capture.base import DataCapture
from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin

__all__ = ["PLUGIN_GROUP", "CAPTURE_GROUP", "Registry", "load_captures", "load_plugins"]

log = logging.getLogger(__name__)

PLUGIN_GROUP = "meshops.plugins"
CAPTURE_GROUP = "meshops.capture"

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """Classes by name (case-insensitive lookup), plus what failed to load and why."""

    kind: str
    classes: dict[str, type[T]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def register(self, name: str, cls: type[T]) -> None:
        self.classes[name.upper()] = cls

    def get(self, name: str) -> type[T]:
        try:
            return self.classes[name.upper()]
        except (KeyError, AttributeError):
            known = ", ".join(sorted(self.classes)) or "none"
            if isinstance(name, str) and name.upper() in self.broken:
                raise PluginError(
                    f"{self.kind} {name} failed to load: {self.broken[name.upper()]}"
                ) from None
            raise PluginError(f"unknown {self.kind} {name!r} (installed: {known})") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper() in self.classes


def _load(group: str, kind: str, base: type, attribute: str) -> Registry:
    registry: Registry = Registry(kind)
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(f"{ep.value} is not a {base.__name__} subclass")
            declared = getattr(cls, attribute, None)
            if not isinstance(declared, str) or declared.upper() != ep.name.upper():
                raise PluginError(
                    f"{ep.value}.{attribute} is {declared!r}, but the entry point is {ep.name!r}"
                )
        except Exception as exc:  # a broken package must not hide the others
            registry.broken[ep.name.upper()] = f"{type(exc).__name__}: {exc}"
            log.error("cannot load %s %s from %s: %s", kind, ep.name, ep.value, exc)
            continue
        registry.register(ep.name, cls)
    return registry


def load_plugins() -> Registry[BusinessPlugin]:
    """Every installed business plugin, by signature."""
    return _load(PLUGIN_GROUP, "plugin", BusinessPlugin, "SIGNATURE")


def load_captures() -> Registry[DataCapture]:
    """Every installed data-capture type, by ``TYPE``."""
    return _load(CAPTURE_GROUP, "capture type", DataCapture, "TYPE")
