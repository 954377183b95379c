"""Waiting for a node's confirmations: notification codes matched by sender and path.

A command is one :class:`Transaction`: the codes it expects (PIPELINE_OK for the pipeline,
PLUGIN_CONFIG_OK per new or changed instance, ...), each matched as the reference SDK
matches them (docs/sdk-interop.md section 3): pipeline codes on ``path[1]``, instance codes
also on ``path[2]`` (upper case) and ``path[3]``. Stricter than the reference: the node is
the verified ``EE_SENDER``, not the alias it claims, and a notification that carries another
session's ``SESSION_ID`` (nodes copy it from the command) answers that session, not this
one, so two sessions working on the same pipeline do not take each other's answers. A
matching negative code fails the whole transaction at once, with the node's reason; so does
a COMM_RECEIVED_BAD_COMMAND (-5000) that carries this session's id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from meshops.protocol import Message, NotificationCode
from meshops.sdk.errors import DeployError, SessionClosedError

__all__ = ["Expect", "Transaction", "Transactions", "remaining"]

Code = NotificationCode


@dataclass(frozen=True)
class Expect:
    """One confirmation: ``ok`` (or any of ``failed``) about a pipeline or one instance."""

    ok: Code
    failed: tuple[Code, ...]
    pipeline: str
    signature: str | None = None
    instance_id: str | None = None

    @classmethod
    def pipeline_ok(cls, pipeline: str) -> Expect:
        return cls(Code.PIPELINE_OK, (Code.PIPELINE_FAILED,), pipeline)

    @classmethod
    def archived(cls, pipeline: str) -> Expect:
        return cls(Code.PIPELINE_ARCHIVE_OK, (Code.PIPELINE_ARCHIVE_FAILED,), pipeline)

    @classmethod
    def instance_ok(cls, pipeline: str, signature: str, instance_id: str) -> Expect:
        return cls(
            Code.PLUGIN_CONFIG_OK,
            (Code.PLUGIN_CONFIG_FAILED,),
            pipeline,
            signature.upper(),
            instance_id,
        )

    @classmethod
    def command_ok(cls, pipeline: str, signature: str, instance_id: str) -> Expect:
        return cls(
            Code.PLUGIN_INSTANCE_COMMAND_OK,
            (Code.PLUGIN_INSTANCE_COMMAND_FAILED, Code.PLUGIN_CONFIG_FAILED),
            pipeline,
            signature.upper(),
            instance_id,
        )

    @property
    def instance(self) -> str | None:
        return f"{self.signature}/{self.instance_id}" if self.signature else None

    def is_about(self, path: tuple[str | None, ...]) -> bool:
        if path[1] != self.pipeline:
            return False
        if self.signature is None:
            return True
        return (path[2] or "").upper() == self.signature and path[3] == self.instance_id

    def describe(self) -> str:
        where = f"instance {self.instance}" if self.instance else f"pipeline {self.pipeline!r}"
        return f"{self.ok.name} ({int(self.ok)}) for {where}"


class Transaction:
    """The confirmations one command waits for, from one node.

    A node refuses a whole config at once: -1 for the pipeline, then -100 for each instance
    the command named. On the first refusal the transaction waits ``SETTLE_S`` more for the
    rest, so the error can name the instances, then fails with the node's reason.
    """

    SETTLE_S = 0.3

    def __init__(
        self,
        what: str,
        node_address: str,
        node_name: str,
        expected: list[Expect],
        session_id: str,
    ) -> None:
        self.what = what
        self.node_address = node_address
        self.node_name = node_name
        self.pipeline = expected[0].pipeline if expected else ""
        self.session_id = session_id
        self._pending = list(dict.fromkeys(expected))
        self._refusals: list[tuple[Expect | None, int, str]] = []
        self._aborted: SessionClosedError | None = None
        self._cond = threading.Condition()

    def feed(self, message: Message) -> None:
        """A verified notification from this transaction's node (transport thread)."""
        code = message.body.get("NOTIFICATION_CODE")
        session = message.body.get("SESSION_ID")
        if not isinstance(code, int) or isinstance(code, bool):
            return
        if session is not None and session != self.session_id:
            return  # the answer to another session's command
        with self._cond:
            if code == Code.COMM_RECEIVED_BAD_COMMAND:
                if session == self.session_id:
                    self._refusals.append((None, code, _reason(message, code)))
            for expect in list(self._pending):
                if not expect.is_about(message.path):
                    continue
                if code == expect.ok:
                    self._pending.remove(expect)
                elif code in expect.failed:
                    self._pending.remove(expect)
                    self._refusals.append((expect, code, _reason(message, code)))
            self._cond.notify_all()

    def abort(self, error: SessionClosedError) -> None:
        with self._cond:
            self._aborted = error
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Return once every confirmation arrived; DeployError on a refusal or timeout."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._cond.wait_for(
                lambda: not self._pending or self._refusals or self._aborted,
                remaining(deadline),
            )
            if self._refusals and self._pending:
                self._cond.wait_for(lambda: not self._pending, self.SETTLE_S)
            if self._aborted is not None:
                raise self._aborted
            if self._refusals:
                raise self._refused()
            if self._pending:
                raise self._timed_out()

    def _refused(self) -> DeployError:
        _, code, reason = self._refusals[0]
        instances = tuple(
            dict.fromkeys(e.instance for e, _, _ in self._refusals if e and e.instance)
        )
        where = f"pipeline {self.pipeline!r}"
        if instances:
            where += f", instance{'s' if len(instances) > 1 else ''} {', '.join(instances)}"
        return DeployError(
            f"{self.what}: node {self.node_name!r} refused {where}: {reason} (code {code})",
            node=self.node_name,
            pipeline=self.pipeline,
            reason=reason,
            code=code,
            instances=instances,
        )

    def _timed_out(self) -> DeployError:
        missing = list(self._pending)
        reason = "no " + ", no ".join(e.describe() for e in missing)
        return DeployError(
            f"{self.what}: node {self.node_name!r} did not confirm in time ({reason}); "
            "is it online and running a compatible node?",
            node=self.node_name,
            pipeline=self.pipeline,
            reason=reason,
            instances=tuple(e.instance for e in missing if e.instance),
        )


def _reason(message: Message, code: int) -> str:
    """The node's words: ``INFO`` (instance codes) or ``NOTIFICATION`` (pipeline codes)."""
    info, text = message.body.get("INFO"), message.body.get("NOTIFICATION")
    for value in (info, text):
        if isinstance(value, str) and value:
            return value[:2000]
    return f"notification code {code} without a reason"


class Transactions:
    """The open transactions of a session; notifications are fed to those of their sender."""

    def __init__(self) -> None:
        self._open: set[Transaction] = set()
        self._lock = threading.Lock()
        self._closed: SessionClosedError | None = None

    def feed(self, message: Message) -> None:
        with self._lock:
            mine = [t for t in self._open if t.node_address == message.sender]
        for transaction in mine:
            transaction.feed(message)

    @contextmanager
    def opened(self, transaction: Transaction) -> Iterator[Transaction]:
        """Register ``transaction`` (before sending its command) for the ``with`` block."""
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._open.add(transaction)
        try:
            yield transaction
        finally:
            with self._lock:
                self._open.discard(transaction)

    def close(self, error: SessionClosedError) -> None:
        with self._lock:
            self._closed = error
            pending = list(self._open)
        for transaction in pending:
            transaction.abort(error)


def remaining(deadline: float) -> float:
    """Seconds left until a ``time.monotonic()`` deadline (never negative)."""
    return max(0.0, deadline - time.monotonic())
