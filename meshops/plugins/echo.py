"""``ECHO_01``: the smallest useful plugin; sends back what its pipeline captures.

Each ``process()`` call sends one payload with the structured data captured since the last
call (``DATA``) and a running ``COUNT``; with ``ALLOW_EMPTY_INPUTS`` it also ticks on a
``Void`` pipeline. Instance commands are answered with a payload that echoes
``COMMAND_PARAMS`` (including the SDK's ``SDK_REQUEST`` id, so
``send_instance_command_and_wait_for_response_payload`` gets its answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginInputs

__all__ = ["EchoConfig", "EchoPlugin"]


class EchoConfig(PluginConfig):
    process_delay: float = Field(default=1.0, ge=0)
    prefix: str = Field(default="", max_length=100, description="Added to every payload.")


class EchoPlugin(BusinessPlugin):
    SIGNATURE = "ECHO_01"
    CONFIG = EchoConfig

    def on_init(self) -> None:
        self.count = 0

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        self.count += 1
        config: EchoConfig = self.config  # type: ignore[assignment]
        return {"PREFIX": config.prefix, "COUNT": self.count, "DATA": inputs.struct_data}

    def on_command(self, command: Any, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        echoed = dict(params)
        if isinstance(command, Mapping) and "SDK_REQUEST" in command:
            echoed["SDK_REQUEST"] = command["SDK_REQUEST"]
        return {"COMMAND_PARAMS": echoed, "COUNT": self.count}
