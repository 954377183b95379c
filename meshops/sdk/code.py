"""Custom code from a Python function: its body, encoded as the node expects.

As the reference SDK does, the node gets the *body* of the function (``def`` line dropped,
dedented), which uses the free name ``plugin`` (the plugin API) and may ``return``. Unlike
the SDK's line cutting, the body is found with ``ast``, so decorators, a signature over
several lines and a one-line ``def f(plugin): return 1`` all work. Names the function takes
from an enclosing scope (closures) do not travel and are refused here, before sending.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import logging
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from meshops.plugins.sandbox import encode_code
from meshops.protocol import TIMESTAMP_FORMAT
from meshops.sdk.errors import RemoteExecutionError

if TYPE_CHECKING:
    from meshops.sdk.payloads import Payload

__all__ = [
    "CUSTOM_EXEC",
    "ERROR_KEY",
    "RESULT_KEY",
    "REST_CUSTOM_EXEC",
    "exec_results",
    "function_body",
    "rest_answer",
    "rest_instance_config",
    "rest_request",
]

log = logging.getLogger(__name__)

CUSTOM_EXEC = "CUSTOM_EXEC_01"
REST_CUSTOM_EXEC = "REST_CUSTOM_EXEC_01"
RESULT_KEY = "REST_EXECUTION_RESULT"
ERROR_KEY = "REST_EXECUTION_ERROR"

Code = Callable[..., Any] | str


def function_body(code: Code) -> str:
    """The source the node runs: a function's dedented body, or a string as it is."""
    if isinstance(code, str):
        if not code.strip():
            raise ValueError("custom code is empty")
        return code
    if not inspect.isfunction(code):
        raise TypeError(f"custom code must be a function or a string, not {type(code).__name__}")
    if code.__code__.co_freevars:
        names = ", ".join(code.__code__.co_freevars)
        raise ValueError(
            f"{code.__qualname__} uses {names} from an enclosing function; only its own "
            "code travels to the node: define the values inside the function"
        )
    if code.__name__ == "<lambda>":
        raise ValueError("a lambda has no body to send: use a def, or pass the code as a string")
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot read the source of {code.__qualname__}: {exc}") from exc
    tree = ast.parse(source)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    first, end = func.body[0], func.body[-1].end_lineno
    lines = source.splitlines()[first.lineno - 1 : end]
    if lines[0][: first.col_offset].strip():  # the body follows the colon: def f(plugin): ...
        return "\n".join([lines[0][first.col_offset :], *lines[1:]]) + "\n"
    return textwrap.dedent("\n".join(lines)) + "\n"


def rest_request(code: Code) -> dict[str, Any]:
    """A ``REQUEST`` for ``REST_CUSTOM_EXEC_01``; its ``TIMESTAMP`` (to the microsecond)
    comes back in the answer, which tells this request's answer from earlier ones."""
    return {
        "DATA": {"CODE": encode_code(function_body(code))},
        "TIMESTAMP": dt.datetime.now().strftime(TIMESTAMP_FORMAT),
    }


def rest_instance_config(request: dict[str, Any], *, void: bool) -> dict[str, Any]:
    """The instance config ``wait_exec`` sends (docs/sdk-interop.md section 5.3)."""
    config: dict[str, Any] = {"REQUEST": request, "RESULT_KEY": RESULT_KEY, "ERROR_KEY": ERROR_KEY}
    if void:
        config.update(ALLOW_EMPTY_INPUTS=True, RUN_WITHOUT_IMAGE=True)
    return config


def rest_answer(data: dict[str, Any], *, node: str, pipeline: str, instance: str) -> Any:
    """The result in a ``REST_CUSTOM_EXEC_01`` answer; RemoteExecutionError if it failed."""
    error = data.get(ERROR_KEY)
    if error is None:
        return data.get(RESULT_KEY)
    text = "; ".join(str(e) for e in error) if isinstance(error, list) else str(error)
    raise RemoteExecutionError(
        f"custom code failed on node {node!r} (pipeline {pipeline!r}): {text}",
        node=node,
        pipeline=pipeline,
        instance=instance,
        remote_error=text,
    )


def exec_results(
    on_result: Callable[[Any, Payload], None], pipeline: str, instance_id: str
) -> Callable[[Payload], None]:
    """A payload callback for ``CUSTOM_EXEC_01``: ``on_result(result, payload)`` for each
    non-None ``EXEC_RESULT`` (as the reference SDK's wrapper); ``EXEC_ERRORS`` are logged."""

    def deliver(payload: Payload) -> None:
        errors = payload.get("EXEC_ERRORS")
        if errors is not None:
            log.warning("custom code %s/%s failed: %s", pipeline, instance_id, errors)
        if payload.get("EXEC_RESULT") is not None:
            on_result(payload["EXEC_RESULT"], payload)

    return deliver
