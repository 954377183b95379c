"""Custom code from functions: the body the node gets, as the reference SDK sends it."""

from __future__ import annotations

import functools

import pytest

from meshops.plugins.sandbox import decode_code
from meshops.sdk import function_body
from meshops.sdk.code import rest_instance_config, rest_request


def block(plugin):
    """Kept, as the SDK keeps it."""
    total = 0
    for i in range(3):
        total += i
    return total


def one_line(plugin): return plugin.cfg_x  # fmt: skip


@functools.lru_cache
def decorated(
    plugin,
):
    return {"a": [1,
                  2]}  # fmt: skip


class Holder:
    def method(plugin):
        return 3


def test_the_body_is_sent_dedented_without_the_def_line() -> None:
    assert function_body(block) == (
        '"""Kept, as the SDK keeps it."""\ntotal = 0\nfor i in range(3):\n'
        "    total += i\nreturn total\n"
    )
    assert function_body(one_line) == "return plugin.cfg_x  # fmt: skip\n"
    skipped = 'return {"a": [1,\n              2]}  # fmt: skip\n'
    assert function_body(decorated.__wrapped__) == skipped
    assert function_body(Holder.method) == "return 3\n"
    assert function_body("return 1") == "return 1"


def test_code_that_cannot_travel_is_refused_here() -> None:
    offset = 2

    def closure(plugin):
        return offset

    with pytest.raises(ValueError, match="uses offset from an enclosing function"):
        function_body(closure)
    with pytest.raises(ValueError, match="lambda"):
        function_body(lambda plugin: 1)
    with pytest.raises(ValueError, match="empty"):
        function_body("  \n")
    with pytest.raises(TypeError, match="function or a string"):
        function_body(print)


def test_a_rest_request_is_what_wait_exec_sends() -> None:
    request = rest_request(block)
    assert decode_code(request["DATA"]["CODE"]) == function_body(block)
    assert len(request["TIMESTAMP"]) == len("2026-01-01 12:00:00.000000")
    assert rest_instance_config(request, void=True) == {
        "REQUEST": request,
        "RESULT_KEY": "REST_EXECUTION_RESULT",
        "ERROR_KEY": "REST_EXECUTION_ERROR",
        "ALLOW_EMPTY_INPUTS": True,
        "RUN_WITHOUT_IMAGE": True,
    }
    assert "ALLOW_EMPTY_INPUTS" not in rest_instance_config(request, void=False)
