"""Custom code from Python functions: one-shot ``run`` and periodic ``add_custom_code``,
executed in the node's sandbox."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from meshops.sdk import DeployError, Payload, RemoteExecutionError

from .conftest import Net, echo

pytestmark = pytest.mark.timeout(90)


def answer(plugin):
    values = [6, 7]
    return {"product": values[0] * values[1], "instance": plugin.cfg_instance_id}


def divide_by_zero(plugin):
    plugin.P("about to fail")
    return 1 / 0


def count_runs(plugin):
    plugin.obj_cache["runs"] = plugin.obj_cache.get("runs", 0) + 1
    return plugin.obj_cache["runs"]


def test_run_returns_the_result_or_raises_the_remote_error(net: Net) -> None:
    with net.other_session() as session:
        result = session.run("n1", answer)
        assert result["product"] == 42 and result["instance"].startswith("rest_exec_")
        assert session.run("n1", "return 'text code'") == "text code"  # the same instance again
        with pytest.raises(RemoteExecutionError, match="ZeroDivisionError") as err:
            session.run("n1", divide_by_zero)
        error = err.value
        assert error.node == "n1" and error.instance.startswith("rest_exec_")
        assert "division by zero" in error.remote_error
        with pytest.raises(RemoteExecutionError, match="not allowed|import"):
            session.run("n1", "import os\nreturn os.getcwd()")
        [exec_pipeline] = net.node.pipelines.names()
        assert exec_pipeline.startswith("meshops_exec_")

        def uses_outer(plugin):
            return result

        with pytest.raises(ValueError, match="uses result from an enclosing function"):
            session.run("n1", uses_outer)
    assert net.node.pipelines.names() == []  # closing the session archived its exec pipeline


def test_run_in_a_pipeline_of_ours(net: Net) -> None:
    pipeline = net.session.deploy("n1", "mine", plugins=[echo()])
    assert net.session.run("n1", answer, pipeline=pipeline)["product"] == 42
    assert {(s.signature, s.instance_id) for s in pipeline.instances} == {
        ("ECHO_01", "e1"),
        ("REST_CUSTOM_EXEC_01", net.session._link.rest_instance_id),  # noqa: SLF001
    }
    with pytest.raises(ValueError, match="does not run on node 'elsewhere'"):
        net.session.run("elsewhere", answer, pipeline=pipeline)


def test_periodic_custom_code_streams_its_results(net: Net) -> None:
    pipeline = net.session.deploy("n1", "periodic")
    results: list[tuple[Any, Payload]] = []
    enough = threading.Event()

    def collect(result: Any, payload: Payload) -> None:
        results.append((result, payload))
        if len(results) >= 3:
            enough.set()

    pipeline.add_custom_code("c1", count_runs, process_delay=0.1, on_result=collect).deploy()
    assert enough.wait(15)
    assert [r for r, _ in results[:3]] == [1, 2, 3]
    payload = results[0][1]
    assert (payload.signature, payload.instance_id) == ("CUSTOM_EXEC_01", "c1")
    assert payload["EXEC_ERRORS"] is None
    with pytest.raises(DeployError, match="takes no instance commands") as err:
        pipeline.command("c1", "STOP")
    assert err.value.code == -101 and err.value.instances == ("CUSTOM_EXEC_01/c1",)
    with pytest.raises(DeployError, match="not allowed|import"):
        pipeline.add_custom_code("c2", "import socket\nreturn 1").deploy()
