"""Custom code plugins: ``CUSTOM_EXEC_01`` (periodic) and ``REST_CUSTOM_EXEC_01`` (one-shot).

Wire-compatible with the reference and its SDK (``Pipeline.create_custom_plugin_instance``
and ``Pipeline.wait_exec``), but the code runs in a ``Sandbox`` worker process per
instance, never in the node (see ``meshops.plugins.sandbox``). Sandbox limits are the
node's policy, not the instance's: they are the class attribute ``SANDBOX_LIMITS``, which
no instance config can raise.

Differences from the reference, on purpose: ``CUSTOM_EXEC_01`` refuses code that breaks the
policy when the config is validated (so the deploy fails with the reason, rather than the
instance erroring forever), while ``REST_CUSTOM_EXEC_01`` answers the request with the
reason in ``ERROR_KEY`` (``wait_exec`` reads only that payload). After an error the periodic
plugin pauses ``ERROR_BACKOFF`` seconds without blocking the node (the reference sleeps
10 s inside the plugin). Log lines of the code go to the node's log, not into payloads,
as in the reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator

from meshops.plugins.base import BusinessPlugin, PluginConfig, PluginContext, PluginInputs
from meshops.plugins.sandbox import (
    DEFAULT_LIMITS,
    CodePolicyError,
    Sandbox,
    SandboxLimits,
    SandboxResult,
    check_code,
    decode_code,
)

__all__ = ["CustomExecConfig", "CustomExecPlugin", "RestCustomExecConfig", "RestCustomExecPlugin"]

_MAX_LOGGED_LINES = 20


class CustomExecConfig(PluginConfig):
    """``CODE`` as the SDK sends it; checked (decodes, passes the policy) when validated."""

    code: str = Field(min_length=1, description="base64(zlib(UTF-8 source)) of the code body.")
    process_delay: float = Field(default=0.05, ge=0, description="Seconds between runs.")
    allow_empty_inputs: bool = Field(default=True, description="Run without new inputs.")
    error_backoff: float = Field(
        default=10.0, ge=0, le=3600, description="Seconds without runs after an error."
    )

    @field_validator("code")
    @classmethod
    def _code_passes_policy(cls, value: str) -> str:
        try:
            check_code(decode_code(value))
        except CodePolicyError as exc:
            raise ValueError(str(exc)) from exc
        return value


class RestCustomExecConfig(PluginConfig):
    """``REQUEST: {DATA: {CODE: ...}, TIMESTAMP: ...}``, answered once per new request."""

    request: dict[str, Any] | None = Field(
        default=None, description="The pending request: DATA.CODE and a TIMESTAMP (any nonce)."
    )
    result_key: str = Field(default="REST_EXECUTION_RESULT", min_length=1)
    error_key: str = Field(default="REST_EXECUTION_ERROR", min_length=1)
    root_payload_key: str = Field(
        default="ROOT_PAYLOAD_DATA",
        min_length=1,
        description="A dict under this key of the result is merged into the payload.",
    )
    process_delay: float = Field(default=0.1, ge=0, description="Seconds between checks.")
    allow_empty_inputs: bool = Field(
        default=True, description="Answer without waiting for pipeline data (SDK: Void)."
    )


class _SandboxedPlugin(BusinessPlugin):
    """What both plugins share: one sandbox per instance, inputs and identity for it."""

    SANDBOX_LIMITS: ClassVar[SandboxLimits] = DEFAULT_LIMITS

    def __init__(self, context: PluginContext, config: PluginConfig) -> None:
        super().__init__(context, config)
        self._sandbox: Sandbox | None = None
        self.runs = 0

    def _run(self, source: str, inputs: PluginInputs, *, fresh_cache: bool) -> SandboxResult:
        if self._sandbox is None:
            name = f"{self.context.pipeline}/{self.context.instance_id}"
            self._sandbox = Sandbox(self.SANDBOX_LIMITS, name=name)
        self.runs += 1
        config = {k: v for k, v in self.config.wire().items() if k != "CODE"}
        config["INSTANCE_ID"] = self.context.instance_id
        result = self._sandbox.run(
            source,
            config=config,
            inputs=_reference_inputs(inputs),
            context=self._identity(),
            fresh_cache=fresh_cache,
        )
        for line in result.logs[:_MAX_LOGGED_LINES]:
            self.log.info("custom code: %s", line)
        for payload in result.payloads:
            self.context.emit(payload)
        if result.error is not None:
            self.log.warning("custom code run %d failed: %s", self.runs, result.error)
        return result

    def _identity(self) -> dict[str, Any]:
        return {
            "node_alias": self.context.node_alias,
            "node_addr": self.context.node_addr,
            "pipeline": self.context.pipeline,
            "signature": self.context.signature,
            "instance_id": self.context.instance_id,
        }

    def _info(self, result: SandboxResult) -> dict[str, Any]:
        sandbox = self._sandbox
        return {
            "RUN": self.runs,
            "DURATION": round(result.duration_s, 6),
            "WORKER_RESTARTED": result.worker_restarted,
            "LOG_LINES": len(result.logs),
            "ISOLATION": list(sandbox.isolation) if sandbox is not None else [],
        }

    def on_close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()


def _reference_inputs(inputs: PluginInputs) -> list[dict[str, Any]]:
    """Captured items in the reference's ``INPUTS`` shape. Images stay in the node (only
    their shape travels): custom code gets structured data."""
    converted = []
    for item in inputs.items:
        is_image = item.image is not None and item.data is None
        metadata = {**item.metadata, "TIMESTAMP": item.timestamp}
        if item.image is not None:
            metadata["IMG_SHAPE"] = list(getattr(item.image, "shape", ()))
        converted.append(
            {
                "TYPE": "IMG" if is_image else "STRUCT_DATA",
                "STRUCT_DATA": item.data,
                "IMG": None,
                "INIT_DATA": None,
                "METADATA": metadata,
            }
        )
    return converted


class CustomExecPlugin(_SandboxedPlugin):
    """Runs ``CODE`` every ``PROCESS_DELAY`` seconds; each result (or error) is a payload
    with ``EXEC_RESULT``/``EXEC_ERRORS``/``EXEC_INFO``. A run returning None sends nothing,
    as in the reference. A new ``CODE`` runs in the same worker with ``obj_cache`` emptied
    (the old code's cache would not fit it); other config changes keep the cache."""

    SIGNATURE = "CUSTOM_EXEC_01"
    CONFIG = CustomExecConfig

    def __init__(self, context: PluginContext, config: PluginConfig) -> None:
        super().__init__(context, config)
        self._source = decode_code(self._config.code)
        self._fresh_cache = False
        self._paused_until = 0.0

    @property
    def _config(self) -> CustomExecConfig:
        return cast(CustomExecConfig, self.config)

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        if time.monotonic() < self._paused_until:
            return None
        result = self._run(self._source, inputs, fresh_cache=self._fresh_cache)
        self._fresh_cache = False
        if result.error is not None:
            self._paused_until = time.monotonic() + self._config.error_backoff
        elif result.result is None:
            return None
        return {
            "EXEC_RESULT": result.result,
            "EXEC_ERRORS": result.error,
            "EXEC_WARNING": result.warnings,
            "EXEC_ITER": self.runs,
            "EXEC_INFO": self._info(result),
        }

    def on_config(self, config: PluginConfig) -> None:
        source = decode_code(cast(CustomExecConfig, config).code)
        if source != self._source:
            self._source = source
            self._fresh_cache = True
            self._paused_until = 0.0
        super().on_config(config)


class RestCustomExecPlugin(_SandboxedPlugin):
    """Runs ``REQUEST.DATA.CODE`` once per new ``REQUEST`` (a different TIMESTAMP or
    content, first config included) and answers with one payload holding ``RESULT_KEY``
    and ``ERROR_KEY`` (None on success) and the request's ``TIMESTAMP``, which is what the
    SDK's ``wait_exec`` waits for. Served requests are remembered in memory only: after a
    node restart the same request runs again (the reference archives the config key)."""

    SIGNATURE = "REST_CUSTOM_EXEC_01"
    CONFIG = RestCustomExecConfig

    def __init__(self, context: PluginContext, config: PluginConfig) -> None:
        super().__init__(context, config)
        self._last_request: str | None = None
        self._pending: dict[str, Any] | None = None
        self._take_request(config)

    def _take_request(self, config: PluginConfig) -> None:
        request = cast(RestCustomExecConfig, config).request
        if request is None:
            return
        fingerprint = json.dumps(request, sort_keys=True, default=repr)
        if fingerprint != self._last_request:
            self._last_request = fingerprint
            self._pending = request

    def on_config(self, config: PluginConfig) -> None:
        super().on_config(config)
        self._take_request(config)

    def process(self, inputs: PluginInputs) -> Mapping[str, Any] | None:
        request, self._pending = self._pending, None
        if request is None:
            return None
        config = cast(RestCustomExecConfig, self.config)
        data = request.get("DATA")
        code = data.get("CODE") if isinstance(data, dict) else None
        try:
            if not isinstance(code, str) or not code:
                raise CodePolicyError("REQUEST.DATA.CODE is missing or empty")
            result = self._run(decode_code(code), inputs, fresh_cache=False)
        except CodePolicyError as exc:
            self.log.warning("custom code request refused: %s", exc)
            result = SandboxResult(error=str(exc))
        payload = {
            config.result_key.upper(): result.result,
            config.error_key.upper(): result.error,
            "EXEC_WARNING": result.warnings,
            "EXEC_INFO": self._info(result),
            "TIMESTAMP": request.get("TIMESTAMP"),
        }
        root = result.result if isinstance(result.result, dict) else {}
        extra = root.get(config.root_payload_key.upper(), root.get(config.root_payload_key.lower()))
        if isinstance(extra, dict):
            for key, value in extra.items():
                payload.setdefault(str(key).upper(), value)
        return payload
