"""Confirmations matched the way the reference SDK matches them, but by verified sender."""

from __future__ import annotations

import time

import pytest

from meshops.protocol import Envelope, EventType, Message, NodeKey, parse_message
from meshops.sdk import DeployError
from meshops.sdk.transactions import Expect, Transaction

NODE = NodeKey.generate()
ENVELOPE = Envelope(NODE, alias="n1")


def notice(code: int, path: list, text: str = "", session: str | None = None) -> Message:
    body = {"NOTIFICATION_CODE": code, "NOTIFICATION": text, "INFO": text if code < 0 else None}
    extra = {"SESSION_ID": session} if session else None
    data = ENVELOPE.encode(EventType.NOTIFICATION, body, path=path, extra=extra)
    return parse_message(data)


def deploy_of(*instances: str) -> Transaction:
    expected = [Expect.pipeline_ok("p")] + [
        Expect.instance_ok("p", "echo_01", i) for i in instances
    ]
    return Transaction("UPDATE_CONFIG of pipeline 'p'", NODE.address, "n1", expected, "s1")


def test_every_confirmation_in_any_order() -> None:
    transaction = deploy_of("a", "b")
    transaction.feed(notice(100, ["n1", "p", "ECHO_01", "b"]))
    transaction.feed(notice(100, ["n1", "other", "ECHO_01", "a"]))  # another pipeline
    transaction.feed(notice(1, ["n1", "p", None, None]))
    with pytest.raises(DeployError, match="no PLUGIN_CONFIG_OK \\(100\\) for instance ECHO_01/a"):
        transaction.wait(0.05)
    transaction.feed(notice(100, ["x", "p", "echo_01", "a"]))  # path[0] is only a claim
    transaction.wait(0)


def test_a_refusal_fails_at_once_with_the_nodes_reason_and_instances() -> None:
    transaction = deploy_of("a", "b")
    transaction.feed(notice(-1, ["n1", "p", None, None], "PROCESS_DELAY: must be >= 0"))
    transaction.feed(notice(-100, ["n1", "p", "ECHO_01", "a"], "PROCESS_DELAY: must be >= 0"))
    transaction.feed(notice(-100, ["n1", "p", "ECHO_01", "b"], "PROCESS_DELAY: must be >= 0"))
    started = time.monotonic()
    with pytest.raises(DeployError) as err:
        transaction.wait(10)
    assert time.monotonic() - started < 1
    assert err.value.code == -1 and err.value.reason == "PROCESS_DELAY: must be >= 0"
    assert err.value.instances == ("ECHO_01/a", "ECHO_01/b")
    assert "node 'n1' refused pipeline 'p', instances ECHO_01/a, ECHO_01/b" in str(err.value)


def test_answers_to_another_session_do_not_count() -> None:
    transaction = deploy_of()
    transaction.feed(notice(1, ["n1", "p", None, None], session="s2"))
    with pytest.raises(DeployError, match="did not confirm"):
        transaction.wait(0.05)
    transaction.feed(notice(1, ["n1", "p", None, None], session="s1"))
    transaction.wait(0)


def test_a_bad_command_notice_counts_only_for_this_session() -> None:
    transaction = deploy_of("a")
    transaction.feed(notice(-5000, ["n1", None, None, None], "unknown ACTION", session="s2"))
    with pytest.raises(DeployError, match="did not confirm"):
        transaction.wait(0.05)
    transaction.feed(notice(-5000, ["n1", None, None, None], "unknown ACTION", session="s1"))
    with pytest.raises(DeployError, match="refused pipeline 'p': unknown ACTION \\(code -5000\\)"):
        transaction.wait(1)
