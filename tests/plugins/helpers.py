"""Driving a plugin class directly, the way the node does, with payloads collected."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from meshops.plugins.base import BusinessPlugin, PluginContext

P = TypeVar("P", bound=BusinessPlugin)


def started(cls: type[P], **config: Any) -> tuple[P, list[dict[str, Any]]]:
    """An instance of ``cls`` with a validated config, ``on_init`` done, and the list its
    payloads go to."""
    sent: list[dict[str, Any]] = []
    context = PluginContext(
        node_alias="edge-1",
        pipeline="test",
        signature=cls.SIGNATURE,
        instance_id="i1",
        emit=sent.append,
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )
    plugin = cls(context, cls.validate_config(config))
    plugin.on_init()
    return plugin, sent
