"""JSON Schema of the installed plugins' and capture types' settings (``meshops schema``).

Editors, the dashboard and scripts read these to complete and check instance configs and
capture settings; the schemas come from the same ``CONFIG`` models the node validates with.
"""

from __future__ import annotations

from typing import Any

from meshops.capture.base import DataCapture
from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin
from meshops.plugins.registry import Registry, load_captures, load_plugins

__all__ = ["installed_schemas", "schema_for"]


def installed_schemas(
    plugins: Registry[BusinessPlugin] | None = None,
    captures: Registry[DataCapture] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{"plugins": {SIGNATURE: schema}, "captures": {TYPE: schema}}``, sorted by name."""
    plugins = load_plugins() if plugins is None else plugins
    captures = load_captures() if captures is None else captures
    return {
        "plugins": {
            cls.SIGNATURE: cls.config_schema()
            for cls in sorted(plugins.classes.values(), key=lambda c: c.SIGNATURE)
        },
        "captures": {
            cls.TYPE: _capture_schema(cls)
            for cls in sorted(captures.classes.values(), key=lambda c: c.TYPE)
        },
    }


def schema_for(
    name: str,
    plugins: Registry[BusinessPlugin] | None = None,
    captures: Registry[DataCapture] | None = None,
) -> dict[str, Any]:
    """The schema of one plugin (by signature) or capture type (by ``TYPE``), any case.

    PluginError when it failed to load, or is unknown (listing what is installed).
    """
    plugins = load_plugins() if plugins is None else plugins
    captures = load_captures() if captures is None else captures
    if name in plugins or name.upper() in plugins.broken:
        return plugins.get(name).config_schema()
    if name in captures or name.upper() in captures.broken:
        return _capture_schema(captures.get(name))
    known_plugins = ", ".join(sorted(c.SIGNATURE for c in plugins.classes.values())) or "none"
    known_captures = ", ".join(sorted(c.TYPE for c in captures.classes.values())) or "none"
    raise PluginError(
        f"no plugin or capture type named {name!r} "
        f"(plugins: {known_plugins}; capture types: {known_captures})"
    )


def _capture_schema(cls: type[DataCapture]) -> dict[str, Any]:
    return cls.CONFIG.model_json_schema(by_alias=True)
