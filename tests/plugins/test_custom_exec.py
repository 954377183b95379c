"""CUSTOM_EXEC_01 and REST_CUSTOM_EXEC_01 driven directly, with code encoded by the SDK.

``sdk_code`` runs the reference SDK's own ``Pipeline._get_base64_code`` (what
``create_custom_plugin_instance`` and ``wait_exec`` send), so these tests prove that what
the SDK builds is what the node runs. Code the SDK would refuse client-side is encoded with
``encode_code``: the node must refuse it by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from ratio1.base.pipeline import Pipeline
from ratio1.code_cheker.base import BaseCodeChecker

from meshops.capture.base import CaptureItem
from meshops.errors import PluginError
from meshops.plugins.base import BusinessPlugin, PluginContext, PluginInputs
from meshops.plugins.custom_exec import CustomExecPlugin, RestCustomExecPlugin
from meshops.plugins.sandbox import SandboxLimits, decode_code, encode_code

TEST_LIMITS = SandboxLimits(wall_s=2.0, memory_mib=256)


class Harness:
    """A fake node for one instance: its context collects emitted payloads."""

    def __init__(self, cls: type[BusinessPlugin], config: Mapping[str, Any]) -> None:
        self.emitted: list[Mapping[str, Any]] = []
        self.context = PluginContext(
            node_alias="node-a",
            pipeline="pipe-1",
            signature=cls.SIGNATURE,
            instance_id="inst-1",
            emit=self.emitted.append,
            log=logging.LoggerAdapter(logging.getLogger("test.custom_exec"), {}),
        )
        limited = type(cls.__name__, (cls,), {"SANDBOX_LIMITS": TEST_LIMITS})
        self.plugin = limited(self.context, cls.validate_config(config))
        self.plugin.on_init()

    def process(self, *data: Any) -> Mapping[str, Any] | None:
        items = tuple(CaptureItem(data=d) for d in data)
        return self.plugin.process(PluginInputs(items=items))


@pytest.fixture
def harnesses() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(cls: type[BusinessPlugin], **config: Any) -> Harness:
        made.append(Harness(cls, config))
        return made[-1]

    yield make
    for harness in made:
        harness.plugin.on_close()


def sdk_code(function: Callable[..., Any]) -> str:
    """CODE exactly as the SDK's Pipeline builds it from a function."""
    return str(Pipeline._get_base64_code(BaseCodeChecker(), function))


def counter(plugin):  # type: ignore[no-untyped-def]
    n = plugin.obj_cache.get("n", 0) + 1
    plugin.obj_cache["n"] = n
    plugin.P("run", n)
    data = plugin.dataapi_struct_data()
    if n == 2:
        plugin.add_payload_by_fields(alert="second run", level=plugin.cfg_level)
    return {"n": n, "data": data, "instance": plugin.get_instance_id()}


def failing(plugin):  # type: ignore[no-untyped-def]
    values = plugin.cfg_values
    return sum(values) / len(values[10:])


def remote_sum(plugin):  # type: ignore[no-untyped-def]
    arr = plugin.np.arange(5)
    return {"total": int(arr.sum()), "ROOT_PAYLOAD_DATA": {"extra": 1}}


def test_sdk_encoding_is_ours() -> None:
    code = sdk_code(counter)
    assert decode_code(code).startswith('n = plugin.obj_cache.get("n", 0) + 1')
    assert encode_code(decode_code(code)) == code


def test_defaults_follow_the_reference() -> None:
    config = CustomExecPlugin.validate_config({"CODE": sdk_code(counter)})
    assert config.process_delay == 0.05 and config.allow_empty_inputs is True
    rest = RestCustomExecPlugin.validate_config({})
    assert rest.wire()["RESULT_KEY"] == "REST_EXECUTION_RESULT"
    assert rest.wire()["ERROR_KEY"] == "REST_EXECUTION_ERROR"


def test_periodic_runs_return_results_and_keep_obj_cache(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(CustomExecPlugin, CODE=sdk_code(counter), LEVEL=3)
    first = h.process({"temp": 20})
    second = h.process()
    assert first is not None and second is not None
    assert first["EXEC_RESULT"] == {"n": 1, "data": {"temp": 20}, "instance": "inst-1"}
    assert second["EXEC_RESULT"]["n"] == 2 and second["EXEC_RESULT"]["data"] is None
    assert first["EXEC_ERRORS"] is None and second["EXEC_ITER"] == 2
    assert second["EXEC_INFO"]["RUN"] == 2 and "rlimits" in second["EXEC_INFO"]["ISOLATION"]
    assert h.emitted == [{"ALERT": "second run", "LEVEL": 3}]


def test_errors_are_reported_as_exec_errors_then_paused(
    harnesses: Callable[..., Harness],
) -> None:
    h = harnesses(CustomExecPlugin, CODE=sdk_code(failing), VALUES=[1, 2], ERROR_BACKOFF=0.3)
    payload = h.process()
    assert payload is not None and payload["EXEC_RESULT"] is None
    assert payload["EXEC_ERRORS"] == "ZeroDivisionError: division by zero (line 2)"
    assert h.process() is None  # paused after an error, without blocking the node
    time.sleep(0.35)
    assert h.process() is not None


def test_new_code_empties_obj_cache(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(CustomExecPlugin, CODE=sdk_code(counter))
    h.process()
    h.process()
    new_code = encode_code("return plugin.obj_cache.get('n', 'empty')")
    h.plugin.on_config(CustomExecPlugin.validate_config({"CODE": new_code}))
    payload = h.process()
    assert payload is not None and payload["EXEC_RESULT"] == "empty"


def test_none_result_sends_nothing(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(CustomExecPlugin, CODE=encode_code("plugin.P('nothing to say')"))
    assert h.process() is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (encode_code("import os\nreturn os.getcwd()"), "import of 'os' is not allowed (line 1)"),
        (encode_code("return open('/etc/passwd').read()"), "use of 'open' is not allowed"),
        (encode_code("return (1,\n"), "syntax error at line"),
        ("%%% not base64", "CODE is not valid base64"),
        ("", "CODE: String should have at least 1 character"),
    ],
)
def test_bad_code_is_refused_at_config_validation(code: str, message: str) -> None:
    with pytest.raises(PluginError, match="CUSTOM_EXEC_01") as caught:
        CustomExecPlugin.validate_config({"CODE": code})
    assert message in str(caught.value) and "CODE" in str(caught.value)


def wait_exec_config(code: str, timestamp: str = "2025-01-01 10:00:00") -> dict[str, Any]:
    """The instance config the SDK's ``Pipeline.wait_exec`` deploys on a Void pipeline."""
    return {
        "REQUEST": {"DATA": {"CODE": code}, "TIMESTAMP": timestamp},
        "RESULT_KEY": "REST_EXECUTION_RESULT",
        "ERROR_KEY": "REST_EXECUTION_ERROR",
        "ALLOW_EMPTY_INPUTS": True,
        "RUN_WITHOUT_IMAGE": True,
    }


def sdk_wait_exec_accepts(payload: Mapping[str, Any]) -> bool:
    """The SDK's ``wait_exec`` on_data test, verbatim in spirit."""
    return "REST_EXECUTION_RESULT" in payload and "REST_EXECUTION_ERROR" in payload


def test_rest_request_is_answered_once(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(RestCustomExecPlugin, **wait_exec_config(sdk_code(remote_sum)))
    payload = h.process()
    assert payload is not None and sdk_wait_exec_accepts(payload)
    assert payload["REST_EXECUTION_RESULT"]["total"] == 10
    assert payload["REST_EXECUTION_ERROR"] is None
    assert payload["TIMESTAMP"] == "2025-01-01 10:00:00" and payload["EXTRA"] == 1
    assert h.process() is None
    same = RestCustomExecPlugin.validate_config(wait_exec_config(sdk_code(remote_sum)))
    h.plugin.on_config(same)
    assert h.process() is None  # the same request is not served twice
    later = wait_exec_config(sdk_code(remote_sum), timestamp="2025-01-01 10:00:01")
    h.plugin.on_config(RestCustomExecPlugin.validate_config(later))
    again = h.process()
    assert again is not None and again["TIMESTAMP"] == "2025-01-01 10:00:01"


def test_rest_request_arriving_by_config_change(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(RestCustomExecPlugin)
    assert h.process() is None
    h.plugin.on_config(
        RestCustomExecPlugin.validate_config(
            wait_exec_config(encode_code("return plugin.cfg_request['TIMESTAMP']"))
        )
    )
    payload = h.process()
    assert payload is not None and payload["REST_EXECUTION_RESULT"] == "2025-01-01 10:00:00"


@pytest.mark.parametrize(
    ("request_data", "message"),
    [
        ({"CODE": encode_code("import socket")}, "import of 'socket' is not allowed (line 1)"),
        ({"CODE": "garbage!"}, "CODE is not valid base64"),
        ({}, "REQUEST.DATA.CODE is missing or empty"),
        ({"CODE": encode_code("return 1 / 0")}, "ZeroDivisionError: division by zero"),
    ],
)
def test_rest_errors_come_back_in_the_error_key(
    harnesses: Callable[..., Harness], request_data: dict[str, Any], message: str
) -> None:
    config = wait_exec_config("x")
    config["REQUEST"]["DATA"] = request_data
    payload = harnesses(RestCustomExecPlugin, **config).process()
    assert payload is not None and sdk_wait_exec_accepts(payload)
    assert payload["REST_EXECUTION_RESULT"] is None
    assert message in payload["REST_EXECUTION_ERROR"]


def test_close_stops_the_worker(harnesses: Callable[..., Harness]) -> None:
    h = harnesses(CustomExecPlugin, CODE=sdk_code(counter))
    h.process()
    sandbox = h.plugin._sandbox  # type: ignore[attr-defined]
    pid = sandbox.pid
    h.plugin.on_close()
    assert pid is not None and sandbox.pid is None
