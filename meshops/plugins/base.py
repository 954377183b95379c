"""The business-plugin API: what a plugin author subclasses.

A plugin is a class with a ``SIGNATURE`` (the name pipelines use), a ``CONFIG`` pydantic
model (its settings: defaults, validation with errors that name the field, JSON Schema for
editors and ``meshops schema``) and a few hooks. The node owns the threads: it calls
``on_init`` once, ``process`` whenever there is input (or every ``PROCESS_DELAY`` seconds when
``ALLOW_EMPTY_INPUTS``), ``on_command`` for instance commands, ``on_config`` when the instance
config changes, and ``on_close`` once at the end. A hook that raises is reported by the node
as an error payload/notification; the instance and the node live on.

Wire keys are UPPER_CASE (``PROCESS_DELAY``); Python attributes are snake_case
(``config.process_delay``). Unknown keys are kept, since reference configs carry many.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from meshops._validation import WireModel, validate_wire
from meshops.capture.base import CaptureItem
from meshops.errors import PluginError

__all__ = ["BusinessPlugin", "PluginConfig", "PluginContext", "PluginInputs"]


class PluginConfig(WireModel):
    """Settings every plugin instance has; subclass it to add your own fields."""

    process_delay: float = Field(
        default=1.0, ge=0, description="Seconds between process() calls when idle."
    )
    allow_empty_inputs: bool = Field(
        default=False, description="Call process() even when the capture gave nothing new."
    )
    ai_engine: str | None = Field(
        default=None,
        description="Model (name or name@version in the node's registry) whose inferences "
        "process() receives, one per captured item.",
    )
    ai_engine_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Model server settings: MAX_BATCH, MAX_WAIT_MS, DEVICE (auto|cpu|cuda), "
        "THREADS, TIMEOUT_S, and model options. The same model with the same settings is "
        "one server, shared.",
    )


@dataclass(frozen=True)
class PluginInputs:
    """What one ``process()`` call sees: the items captured since the last call, and the
    inferences of the model named by ``AI_ENGINE`` (see meshops.serving), one per item, in
    the same order (empty when the plugin names no model)."""

    items: tuple[CaptureItem, ...] = ()
    inferences: tuple[Any, ...] = ()

    @property
    def struct_data(self) -> list[Any]:
        return [item.data for item in self.items if item.data is not None]

    @property
    def images(self) -> list[Any]:
        return [item.image for item in self.items if item.image is not None]

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass
class PluginContext:
    """What the node gives an instance: who it is, where to send payloads, a logger."""

    node_alias: str
    pipeline: str
    signature: str
    instance_id: str
    emit: Callable[[Mapping[str, Any]], None]
    """Send one payload body (UPPER_CASE keys) from this instance."""
    log: logging.LoggerAdapter[logging.Logger]
    node_addr: str | None = None
    """The node's ``0xai_`` address (None where a plugin runs outside a node, e.g. in tests)."""


class BusinessPlugin(ABC):
    """Subclass, set ``SIGNATURE`` (and ``CONFIG``), implement ``process``."""

    SIGNATURE: ClassVar[str]
    CONFIG: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, context: PluginContext, config: PluginConfig) -> None:
        self.context = context
        self.config = config
        self.log = context.log

    # ---- hooks ---------------------------------------------------------------------------

    def on_init(self) -> None:
        """Called once before the first ``process``."""

    @abstractmethod
    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        """Handle new inputs; return a payload body (or None, or use ``add_payload``)."""

    def on_command(self, command: Any, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """An instance command (``INSTANCE_COMMAND``); may return a payload body."""
        raise PluginError(f"{self.SIGNATURE} takes no instance commands")

    def on_config(self, config: PluginConfig) -> None:
        """The instance config changed (already validated); default: just take it."""
        self.config = config

    def on_close(self) -> None:
        """Called once when the instance stops."""

    def model_input(self, item: CaptureItem) -> Any:
        """What of ``item`` goes to the ``AI_ENGINE`` model: by default its image, else its
        data. Return None to skip an item (its inference is then None)."""
        return item.image if item.image is not None else item.data

    # ---- helpers -------------------------------------------------------------------------

    def add_payload(self, **fields: Any) -> None:
        """Send a payload now (keys are upper-cased)."""
        self.context.emit({key.upper(): value for key, value in fields.items()})

    @classmethod
    def validate_config(cls, raw: Mapping[str, Any]) -> PluginConfig:
        """The typed config from wire keys; PluginError names every bad field."""
        return validate_wire(cls.CONFIG, raw, what=cls.SIGNATURE, error=PluginError)

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return cls.CONFIG.model_json_schema(by_alias=True)
