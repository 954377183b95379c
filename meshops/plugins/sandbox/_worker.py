"""The worker process: confines itself, then runs custom code one request at a time.

Started by ``Sandbox`` as ``python -I -B -c <bootstrap> meshops-sandbox <name> <settings>``
with a clean environment, no inherited descriptors but its pipes, and an empty directory as
its working directory. It moves its protocol pipes off descriptors 0-2 (so code that makes
numpy print cannot corrupt the protocol), imports and filters the allowed modules, applies
``_isolation.confine`` and says ``ready``. Then, for each ``run`` request line, it re-checks
the code with the same policy, runs it with the restricted builtins and the ``plugin``
proxy, and answers one JSON line. ``obj_cache`` lives here, so it lasts exactly as long as
this process. It exits on end of input.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import OrderedDict
from types import ModuleType, TracebackType
from typing import Any, BinaryIO

from meshops.plugins.sandbox._api import PluginProxy, RunOutput
from meshops.plugins.sandbox._errors import CodePolicyError
from meshops.plugins.sandbox._isolation import arm_cpu_limit, confine, pin_time_zone
from meshops.plugins.sandbox._jsonable import dumps_capped, to_jsonable
from meshops.plugins.sandbox._policy import (
    CODE_FILENAME,
    FUNCTION_NAME,
    RESULT_VARS,
    PreparedCode,
    prepare,
)
from meshops.plugins.sandbox._restricted import build_modules, make_builtins

__all__ = ["main"]

_MAX_ERROR_CHARS = 500
# imported lazily by the stdlib (strptime, codecs) and numpy (percentile), so loaded
# before the filesystem is gone; custom code cannot reach them
_PRELOADED = (
    "_strptime",
    "encodings.idna",
    "encodings.utf_16",
    "encodings.utf_32",
    "encodings.latin_1",
    "encodings.cp1252",
    "unicodedata",
    "numpy.ma",
)


class _Notes(logging.Handler):
    """Keeps the worker's own warnings; they travel to the node in the ready message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Runner:
    def __init__(self, modules: dict[str, ModuleType], settings: dict[str, Any]) -> None:
        self._modules = modules
        self._settings = settings
        self._cache: dict[Any, Any] = {}
        self._prepared: OrderedDict[str, PreparedCode] = OrderedDict()

    def _prepare(self, source: str) -> PreparedCode:
        found = self._prepared.pop(source, None)
        if found is None:
            found = prepare(source, max_bytes=self._settings["max_source_bytes"])
        self._prepared[source] = found
        while len(self._prepared) > 4:
            self._prepared.popitem(last=False)
        return found

    def run(self, request: dict[str, Any]) -> bytes:
        settings = self._settings
        arm_cpu_limit(settings["cpu_s"])
        output = RunOutput(
            max_logs=settings["max_logs"],
            max_log_chars=settings["max_log_chars"],
            max_payloads=settings["max_payloads"],
        )
        if request.get("fresh_cache"):
            self._cache.clear()
        proxy = PluginProxy(
            config=request.get("config") or {},
            inputs=request.get("inputs") or [],
            context=request.get("context") or {},
            output=output,
            obj_cache=self._cache,
            modules=self._modules,
        )
        result: Any = None
        error: str | None = None
        started = time.perf_counter()
        try:
            prepared = self._prepare(request.get("source", ""))
            scope = {
                "__builtins__": make_builtins(self._modules, output.print_function()),
                "__name__": "__custom_code__",
                "plugin": proxy,
            }
            exec(prepared.code, scope)
            if prepared.wrapped:
                result = scope[FUNCTION_NAME](proxy)
            else:
                result = next((scope[name] for name in RESULT_VARS if name in scope), None)
        except CodePolicyError as exc:
            error = str(exc)
        except MemoryError as exc:
            error = f"memory limit of {settings['memory_mib']} MiB exceeded{_where(exc)}"
        except BaseException as exc:  # custom code may raise anything; it is reported
            error = _describe(exc) + _where(exc)
        duration = time.perf_counter() - started
        output.finish()
        reply = {
            "op": "result",
            "id": request.get("id"),
            "error": error,
            "logs": output.logs,
            "payloads": output.payloads,
            "warnings": output.warnings,
            "duration_s": duration,
        }
        try:
            reply["result"] = to_jsonable(result)
            return dumps_capped(reply, settings["max_reply_bytes"])
        except (ValueError, TypeError, RecursionError, MemoryError) as exc:
            reply.update(result=None, payloads=[], error=error or f"result is too large: {exc}")
            return dumps_capped(reply, settings["max_reply_bytes"])


def _describe(exc: BaseException) -> str:
    try:
        return _one_line(f"{type(exc).__name__}: {exc}")
    except Exception as inner:  # the exception's own __str__ (user code) failed
        return f"{type(exc).__name__} (its message raised {type(inner).__name__})"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "..."


def _where(exc: BaseException) -> str:
    """`` (line N)`` for the innermost frame of custom code in the traceback."""
    line = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == CODE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None and isinstance(exc, SyntaxError) and exc.filename == CODE_FILENAME:
        line = exc.lineno
    return f" (line {line})" if line is not None else ""


def _move_protocol_fds() -> tuple[int, int]:
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return in_fd, out_fd


def _send(writer: BinaryIO, message: dict[str, Any], max_bytes: int) -> None:
    writer.write(dumps_capped(message, max_bytes))
    writer.flush()


def main() -> int:
    """Entry point of the worker process (see the module docstring)."""
    settings = json.loads(sys.argv[-1])
    notes = _Notes()
    logging.basicConfig(handlers=[notes], level=logging.WARNING, force=True)
    in_fd, out_fd = _move_protocol_fds()
    reader = os.fdopen(in_fd, "rb")
    writer = os.fdopen(out_fd, "wb")
    max_reply = settings["max_reply_bytes"]
    try:
        pin_time_zone()
        for name in _PRELOADED:
            __import__(name)
        modules = build_modules()
        isolation = confine(
            os.getcwd(),
            memory_bytes=settings["memory_mib"] * 2**20,
            keep_fds=(0, 1, 2, in_fd, out_fd),
        )
    except Exception as exc:  # reported to the node, which gives up on this worker
        message = _one_line(f"{type(exc).__name__}: {exc}")
        _send(writer, {"op": "fatal", "error": message}, max_reply)
        return 1
    ready = {"op": "ready", "pid": os.getpid(), "isolation": isolation, "notes": notes.lines}
    _send(writer, ready, max_reply)
    runner = _Runner(modules, settings)
    while True:
        line = reader.readline(settings["max_request_bytes"] + 1)
        if not line:
            return 0
        try:
            request = json.loads(line)
            if not line.endswith(b"\n") or request.get("op") != "run":
                raise ValueError("malformed request")
            _send_raw(writer, runner.run(request))
        except (ValueError, TypeError, KeyError, AttributeError, MemoryError) as exc:
            _send(writer, {"op": "fatal", "error": _one_line(f"worker: {exc}")}, max_reply)
            return 1


def _send_raw(writer: BinaryIO, raw: bytes) -> None:
    writer.write(raw)
    writer.flush()


if __name__ == "__main__":
    sys.exit(main())
