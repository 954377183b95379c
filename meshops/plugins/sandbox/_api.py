"""``plugin``: the object custom code talks to, inside the worker.

It mirrors the part of the reference's ``CustomPluginTemplate`` that custom code commonly
uses (``P``, ``obj_cache``, ``time``, ``np``, ``cfg_*``, ``dataapi_*``,
``add_payload_by_fields``...). It holds nothing the code could not already see: the
instance config, the inputs, the code's own logs, payloads and cache, and the allowed
module copies; so reaching its private fields gains nothing. Any other member raises an
AttributeError naming it, instead of the reference's ~500-member surface.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
import uuid as uuid_module
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from meshops.plugins.sandbox._jsonable import to_jsonable

__all__ = ["SUPPORTED_MEMBERS", "PluginProxy", "RunOutput"]


class RunOutput:
    """What one run collects besides its result: log lines, payloads, warnings."""

    def __init__(self, *, max_logs: int, max_log_chars: int, max_payloads: int) -> None:
        self.logs: list[str] = []
        self.payloads: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._max_logs = max_logs
        self._max_log_chars = max_log_chars
        self._max_payloads = max_payloads
        self._dropped_logs = 0

    def log(self, text: str) -> None:
        if len(self.logs) >= self._max_logs:
            self._dropped_logs += 1
            return
        if len(text) > self._max_log_chars:
            text = text[: self._max_log_chars] + "..."
        self.logs.append(text)

    def payload(self, fields: Mapping[str, Any]) -> None:
        if len(self.payloads) >= self._max_payloads:
            raise RuntimeError(f"at most {self._max_payloads} payloads per run")
        self.payloads.append({str(k).upper(): to_jsonable(v) for k, v in fields.items()})

    def finish(self) -> None:
        if self._dropped_logs:
            self.logs.append(f"... {self._dropped_logs} more log lines dropped")

    def print_function(self) -> Callable[..., None]:
        def collect(*args: Any, sep: str | None = " ", end: str | None = None, **_: Any) -> None:
            self.log((sep if sep is not None else " ").join(str(a) for a in args))

        return collect


SUPPORTED_MEMBERS: tuple[str, ...] = (
    "P",
    "D",
    "add_payload_by_fields",
    "cfg",
    "cfg_<key>",
    "dataapi_inputs",
    "dataapi_struct_data",
    "dataapi_struct_datas",
    "dataapi_specific_struct_data",
    "datetime",
    "datetime_to_str",
    "deepcopy",
    "defaultdict",
    "deque",
    "e2_addr",
    "e2_id",
    "ee_addr",
    "ee_id",
    "eeid",
    "get_instance_id",
    "get_signature",
    "get_stream_id",
    "json",
    "json_dumps",
    "json_loads",
    "math",
    "node_addr",
    "node_id",
    "now_str",
    "np",
    "obj_cache",
    "re",
    "sleep",
    "time",
    "time_to_str",
    "timedelta",
    "uuid",
)


class PluginProxy:
    """The ``plugin`` name of custom code (one per run; ``obj_cache`` outlives it)."""

    __slots__ = ("_config", "_inputs", "_context", "_output", "_cache", "_modules")

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        inputs: list[Any],
        context: Mapping[str, Any],
        output: RunOutput,
        obj_cache: dict[Any, Any],
        modules: Mapping[str, ModuleType],
    ) -> None:
        self._config = dict(config)
        self._inputs = [i for i in inputs if isinstance(i, dict)]
        self._context = dict(context)
        self._output = output
        self._cache = obj_cache
        self._modules = modules

    def __getattr__(self, name: str) -> Any:
        if name.startswith("cfg_"):
            key = name[4:].upper()
            if key in self._config:
                return self._config[key]
            raise AttributeError(f"plugin.{name}: config key '{key}' is not set for this instance")
        raise AttributeError(
            f"plugin.{name} is not supported by MeshOps custom code; supported: "
            + ", ".join(SUPPORTED_MEMBERS)
        )

    def __repr__(self) -> str:
        return f"<plugin {self.get_signature()}:{self.get_instance_id()}>"

    # ---- logging and output ---------------------------------------------------------------

    def P(self, *args: Any, **_: Any) -> None:
        """Log a line; lines come back with the run's result."""
        self._output.log(" ".join(str(a) for a in args))

    D = P

    def add_payload_by_fields(self, **fields: Any) -> None:
        """Send an extra payload (keys upper-cased) from this instance."""
        self._output.payload(fields)

    @property
    def obj_cache(self) -> dict[Any, Any]:
        """Kept between runs of the same worker; empty again after a worker restart."""
        return self._cache

    # ---- identity and config --------------------------------------------------------------

    @property
    def cfg(self) -> dict[str, Any]:
        return dict(self._config)

    def get_instance_id(self) -> str | None:
        return self._context.get("instance_id")

    def get_stream_id(self) -> str | None:
        return self._context.get("pipeline")

    def get_signature(self) -> str | None:
        return self._context.get("signature")

    @property
    def node_addr(self) -> str | None:
        return self._context.get("node_addr")

    ee_addr = e2_addr = node_addr

    @property
    def node_id(self) -> str | None:
        return self._context.get("node_alias")

    ee_id = eeid = e2_id = node_id

    # ---- inputs ---------------------------------------------------------------------------

    def dataapi_inputs(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._inputs)

    def _struct_inputs(self) -> list[dict[str, Any]]:
        return [i for i in self._inputs if i.get("TYPE") == "STRUCT_DATA"]

    def dataapi_struct_datas(self, full: bool = False, as_list: bool = False) -> Any:
        found = self._struct_inputs()
        values = found if full else [i.get("STRUCT_DATA") for i in found]
        return list(values) if as_list and not full else dict(enumerate(values))

    def dataapi_specific_struct_data(
        self, idx: int = 0, full: bool = False, raise_if_error: bool = False
    ) -> Any:
        datas = self.dataapi_struct_datas(full=full)
        if idx not in datas:
            if raise_if_error:
                raise IndexError(f"no structured data at index {idx}")
            return None
        return datas[idx]

    def dataapi_struct_data(self, full: bool = False, raise_if_error: bool = False) -> Any:
        return self.dataapi_specific_struct_data(0, full=full, raise_if_error=raise_if_error)

    # ---- utilities ------------------------------------------------------------------------

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Bounded by the run's wall-clock limit: the worker is killed when it is hit."""
        time.sleep(max(0.0, float(seconds)))

    def now_str(self, nice_print: bool = False, short: bool = False) -> str:
        fmt = (
            ("%Y-%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S.%f")
            if nice_print
            else ("%Y%m%d%H%M%S" if short else "%Y%m%d%H%M%S%f")
        )
        return dt.datetime.now().strftime(fmt)

    def time_to_str(self, ts: float | None = None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return time.strftime(fmt, time.localtime(time.time() if ts is None else ts))

    def datetime_to_str(self, dt_value: dt.datetime | None = None, fmt: str | None = None) -> str:
        return (dt_value or dt.datetime.now()).strftime(fmt or "%Y-%m-%d %H:%M:%S")

    def uuid(self, size: int = 13) -> str:
        return uuid_module.uuid4().hex[:size]

    def timedelta(self, **kwargs: Any) -> dt.timedelta:
        return dt.timedelta(**kwargs)

    def json_dumps(self, dct: Any, replace_nan: bool = False, **kwargs: Any) -> str:
        return self.json.dumps(to_jsonable(dct) if replace_nan else dct, **kwargs)

    def json_loads(self, json_str: str, **kwargs: Any) -> Any:
        return self.json.loads(json_str, **kwargs)

    @property
    def datetime(self) -> type[dt.datetime]:
        return dt.datetime

    @property
    def deepcopy(self) -> Callable[..., Any]:
        return copy.deepcopy

    @property
    def defaultdict(self) -> type[defaultdict[Any, Any]]:
        return defaultdict

    @property
    def deque(self) -> type[deque[Any]]:
        return deque

    @property
    def np(self) -> ModuleType:
        return self._modules["numpy"]

    @property
    def json(self) -> ModuleType:
        return self._modules["json"]

    @property
    def re(self) -> ModuleType:
        return self._modules["re"]

    @property
    def math(self) -> ModuleType:
        return self._modules["math"]
