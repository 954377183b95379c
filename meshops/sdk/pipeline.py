"""A pipeline on one node, as a session sees it: staged changes, confirmed deploys.

Changes (``add_instance``, ``add_custom_code``) are staged locally and sent by ``deploy()``,
which picks the command the reference SDK would (docs/sdk-interop.md section 3): the whole
config (``UPDATE_CONFIG``) when the pipeline is new, its capture changed or instances were
added; ``BATCH_UPDATE_PIPELINE_INSTANCE`` with only the changed keys when existing instances
alone changed. It then waits for PIPELINE_OK and a PLUGIN_CONFIG_OK per new or changed
instance. What the node confirmed becomes the pipeline's ``config``; a refusal discards the
staged changes, as the reference does, and raises ``DeployError``.

One command at a time per pipeline (a lock): a confirmation belongs to the one waiting.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from meshops.plugins.sandbox import encode_code
from meshops.protocol import Command
from meshops.sdk.code import (
    CUSTOM_EXEC,
    REST_CUSTOM_EXEC,
    RESULT_KEY,
    Code,
    exec_results,
    function_body,
    rest_answer,
    rest_instance_config,
    rest_request,
)
from meshops.sdk.errors import NodeTimeoutError, SdkError
from meshops.sdk.payloads import Payload, PayloadFilter, PayloadStream, Subscription
from meshops.sdk.specs import (
    InstanceKey,
    PluginSpec,
    capture_part,
    instance_command,
    plan_deploy,
    plugins_list,
    wire_keys,
)
from meshops.sdk.transactions import Expect, remaining

if TYPE_CHECKING:
    from meshops.sdk.connection import Connection

__all__ = ["DEFAULT_TIMEOUT", "Pipeline"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0


class Pipeline:
    """One pipeline on one node. Made by ``Session.deploy`` or ``Session.attach``."""

    def __init__(
        self,
        link: Connection,
        node_address: str,
        node: str,
        capture: Mapping[str, Any],
        instances: Mapping[InstanceKey, Mapping[str, Any]] = {},
        *,
        confirmed: bool = False,
    ) -> None:
        self.node_address = node_address
        self.node = node
        """The node's alias (its address when it has none)."""
        self.name = str(capture["NAME"])
        self._link = link
        self._capture = capture_part(capture)
        self._instances = {key: dict(config) for key, config in instances.items()}
        self._done_capture = copy.deepcopy(self._capture) if confirmed else None
        self._done = copy.deepcopy(self._instances) if confirmed else {}
        self._lock = threading.RLock()
        self._run_lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r} on {self.node!r})"

    # ---- what runs -----------------------------------------------------------------------

    @property
    def capture_type(self) -> str | None:
        return self._capture.get("TYPE")

    @property
    def config(self) -> dict[str, Any]:
        """The config the node confirmed (empty before the first deploy)."""
        with self._lock:
            if self._done_capture is None:
                return {}
            return copy.deepcopy({**self._done_capture, "PLUGINS": plugins_list(self._done)})

    @property
    def instances(self) -> list[PluginSpec]:
        """The confirmed instances."""
        with self._lock:
            return [PluginSpec(sig, iid, copy.deepcopy(c)) for (sig, iid), c in self._done.items()]

    def stage(
        self, capture: Mapping[str, Any], instances: Mapping[InstanceKey, Mapping[str, Any]]
    ) -> None:
        """Merge settings and instance configs into the staged state, key by key, as the
        node merges an UPDATE_CONFIG into what runs."""
        with self._lock:
            self._capture.update(capture_part(capture))
            for key, config in instances.items():
                self._instances[key] = {**self._instances.get(key, {}), **config}

    def _key(self, instance_id: str) -> InstanceKey:
        keys = [key for key in self._instances if key[1] == instance_id]
        if len(keys) != 1:
            known = ", ".join(f"{s}/{i}" for s, i in self._instances) or "none"
            problem = "no instance" if not keys else "several instances"
            raise ValueError(f"pipeline {self.name!r} has {problem} {instance_id!r} ({known})")
        return keys[0]

    def _check_open(self) -> None:
        if self.closed:
            raise SdkError(f"pipeline {self.name!r} on node {self.node!r} is closed")

    # ---- staging and deploying -----------------------------------------------------------

    def add_instance(
        self, signature: str, instance_id: str, config: Mapping[str, Any] | None = None, **kw: Any
    ) -> Self:
        """Stage a new plugin instance (``**kw`` as snake_case, sent UPPER_CASE)."""
        spec = PluginSpec(signature, instance_id, {**(config or {}), **kw})
        with self._lock:
            self._check_open()
            if spec.key in self._instances:
                raise ValueError(f"pipeline {self.name!r} already has instance {spec.key}")
            self._instances[spec.key] = spec.wire()
        return self

    def add_custom_code(
        self,
        instance_id: str,
        code: Code,
        *,
        process_delay: float | None = None,
        on_result: Callable[[Any, Payload], None] | None = None,
        **config: Any,
    ) -> Self:
        """Stage a ``CUSTOM_EXEC_01`` instance running ``code`` (a function's body) every
        ``process_delay`` s; each non-None result arrives as a payload with ``EXEC_RESULT``
        (``EXEC_ERRORS`` says why a run failed) and, if given, goes to ``on_result``."""
        extra = {"CODE": encode_code(function_body(code)), **wire_keys(config)}
        if process_delay is not None:
            extra["PROCESS_DELAY"] = process_delay
        self.add_instance(CUSTOM_EXEC, instance_id, extra)
        if on_result is not None:
            self.on_payload(exec_results(on_result, self.name, instance_id), instance_id)
        return self

    def deploy(self, timeout: float = DEFAULT_TIMEOUT) -> Self:
        """Send the staged changes and wait for the node to confirm them (see module doc)."""
        with self._lock:
            self._check_open()
            plan = plan_deploy(self._capture, self._instances, self._done_capture, self._done)
            if plan is None:
                return self
            try:
                self._send(*plan, timeout=timeout)
            except SdkError:
                self._instances = copy.deepcopy(self._done)
                if self._done_capture is not None:
                    self._capture = copy.deepcopy(self._done_capture)
                raise
            self._done_capture = copy.deepcopy(self._capture)
            self._done = copy.deepcopy(self._instances)
        return self

    def update_instance(
        self,
        instance_id: str,
        config: Mapping[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **changes: Any,
    ) -> Self:
        """Change an instance's config now and wait for the node's PLUGIN_CONFIG_OK."""
        with self._lock:
            self._check_open()
            key = self._key(instance_id)
            self._instances[key] = {
                **self._instances[key],
                **wire_keys({**(config or {}), **changes}),
            }
            return self.deploy(timeout)

    # ---- commands ------------------------------------------------------------------------

    def command(
        self,
        instance_id: str,
        command: str | Mapping[str, Any],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reply_timeout: float = 3.0,
        **params: Any,
    ) -> Payload | None:
        """Send an instance command; wait for PIPELINE_OK and PLUGIN_INSTANCE_COMMAND_OK.

        A string ``command`` becomes ``COMMAND_PARAMS[command] = true`` (``**params`` join it,
        UPPER_CASE); a dict is the whole ``INSTANCE_COMMAND``. The command carries an
        ``SDK_REQUEST`` id; the instance's payload echoing it in ``COMMAND_PARAMS`` within
        ``reply_timeout`` s is returned (None if none came, as in the reference SDK).
        """
        uid = uuid.uuid4().hex[:8]
        body = instance_command(command, params, uid)
        with self._lock:
            self._check_open()
            sig, iid = self._key(instance_id)
            item = {
                "NAME": self.name,
                "SIGNATURE": sig,
                "INSTANCE_ID": iid,
                "INSTANCE_CONFIG": {"INSTANCE_COMMAND": body},
            }
            expected = [Expect.pipeline_ok(self.name), Expect.command_ok(self.name, sig, iid)]
            with self.payloads(iid) as replies:
                self._send(Command.UPDATE_PIPELINE_INSTANCE, item, expected, timeout=timeout)
                deadline = time.monotonic() + reply_timeout
                while (reply := replies.get(remaining(deadline))) is not None:
                    echoed = reply.get("COMMAND_PARAMS")
                    if isinstance(echoed, Mapping) and echoed.get("SDK_REQUEST") == uid:
                        return reply
        return None

    def run(self, code: Code, *, timeout: float = 20.0) -> Any:
        """Run ``code`` once on the node and return its result: this session's one
        ``REST_CUSTOM_EXEC_01`` instance here gets the code as a new ``REQUEST``.
        RemoteExecutionError carries the node's error; NodeTimeoutError: no answer in time."""
        request = rest_request(code)
        deadline = time.monotonic() + timeout
        iid = self._link.rest_instance_id
        key = (REST_CUSTOM_EXEC, iid)
        with self._run_lock, self.payloads(iid) as answers:
            config = rest_instance_config(request, void=self.capture_type == "Void")
            self.stage({}, {key: {"INSTANCE_ID": iid, **config}})
            self.deploy(remaining(deadline))
            while (answer := answers.get(remaining(deadline))) is not None:
                data = answer.data
                if data.get("TIMESTAMP") == request["TIMESTAMP"] and RESULT_KEY in data:
                    break
            else:
                raise NodeTimeoutError(
                    f"node {self.node!r} did not answer the custom code of {key[0]}/{iid} in "
                    f"pipeline {self.name!r} within {timeout:g} s",
                    node=self.node,
                )
        return rest_answer(data, node=self.node, pipeline=self.name, instance=iid)

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Archive the pipeline on the node (``ARCHIVE_CONFIG``) and wait for code 4."""
        with self._lock:
            if self.closed:
                return
            expected = [Expect.archived(self.name)]
            self._send(Command.ARCHIVE_CONFIG, self.name, expected, timeout=timeout)
            self.closed = True
            for subscription in self._subscriptions:
                subscription.cancel()

    def _send(self, action: Command, payload: Any, expected: list[Expect], *, timeout: float):
        link, node = self._link, self.node
        link.command(self.node_address, node, self.name, action, payload, expected, timeout=timeout)

    # ---- payloads ------------------------------------------------------------------------

    def _filter(self, instance_id: str | None) -> PayloadFilter:
        return PayloadFilter(node=self.node_address, pipeline=self.name, instance_id=instance_id)

    def payloads(
        self, instance_id: str | None = None, timeout: float | None = None
    ) -> PayloadStream:
        """An iterator of this pipeline's payloads (of one instance), from now on."""
        return self._link.router.open_stream(self._filter(instance_id), timeout)

    def on_payload(
        self, callback: Callable[[Payload], None], instance_id: str | None = None
    ) -> Subscription:
        """Call ``callback(payload)`` for each payload (on the session's callback thread)."""
        subscription = self._link.router.add_callback(self._filter(instance_id), callback)
        self._subscriptions.append(subscription)
        return subscription
