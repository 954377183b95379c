"""``Session``: a synchronous client of a MeshOps (or Ratio1/Naeural) network.

Usable from scripts and notebooks: every call blocks until the node confirmed (or refused)
it, with a timeout; payloads come as iterators or callbacks. The network side lives in
:class:`~meshops.sdk.connection.Connection` (one MQTT connection, verified intake, signed and
encrypted commands); this class is the user's vocabulary on top of it.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from meshops.errors import ConfigError
from meshops.node.messages import ADMIN_PIPELINE
from meshops.node.settings import parse_broker_url
from meshops.protocol import DEFAULT_ROOT_TOPIC, Command, NodeKey, NotificationCode, Topics
from meshops.sdk.code import Code
from meshops.sdk.connection import Connection
from meshops.sdk.discovery import NodeInfo
from meshops.sdk.errors import NodeTimeoutError, PipelineNotFoundError, SdkError
from meshops.sdk.keys import load_client_key
from meshops.sdk.payloads import Payload, PayloadFilter, PayloadStream, Subscription
from meshops.sdk.pipeline import DEFAULT_TIMEOUT, Pipeline
from meshops.sdk.specs import PipelineInfo, PluginSpec, instances_of, plugin_specs, wire_keys
from meshops.sdk.transactions import Expect, remaining

__all__ = ["Session"]

log = logging.getLogger(__name__)

NodeRef = str | NodeInfo
MODEL_CHUNK_BYTES = 512 * 1024
"""A model travels in chunks this large (well under a message's 2 MiB limit once encoded)."""
PROBE_S = 1.0
"""How long ``deploy`` waits for a node's configs (to send only changes) before it deploys
blind; a node answers an allowed sender at once."""


class Session:
    """A client of the network: discover nodes, deploy and drive pipelines, stream payloads.

    ``with Session("mqtt://127.0.0.1:1883") as s: s.deploy("n1", "demo", plugins=[...])``

    ``key``: a ``NodeKey``, a PEM file, or None for ``~/.meshops/client.pem`` (made on first
    use). ``name`` (at most 20 characters) is the ``SESSION_ID``/``INITIATOR_ID`` of what it
    sends; by default a fresh ``meshops-<8 hex>``.
    """

    def __init__(
        self,
        broker: str = "mqtt://127.0.0.1:1883",
        *,
        key: NodeKey | str | os.PathLike[str] | None = None,
        root_topic: str = DEFAULT_ROOT_TOPIC,
        name: str | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        try:
            host, port = parse_broker_url(broker)
            topics = Topics(root_topic)
            client_key = load_client_key(key)
            self._link = Connection(
                host,
                port,
                key=client_key,
                broker=broker,
                topics=topics,
                name=name if name is not None else f"meshops-{os.urandom(4).hex()}",
                username=username,
                password=password,
                connect_timeout=connect_timeout,
            )
        except ValueError as exc:
            raise ConfigError(f"Session: {exc}") from exc
        self.broker = broker
        self.key = client_key
        self.address = client_key.address
        self.name = self._link.name
        self.topics = topics
        self._pipelines: list[Pipeline] = []
        self._exec: dict[str, Pipeline] = {}
        self._lock = threading.Lock()
        self._closing = False
        log.info("session %s (%s) connected to %s", self.name, self.address, broker)

    def __repr__(self) -> str:
        return f"Session({self.name!r}, {self.address}, {self.broker})"

    @property
    def refused(self) -> dict[str, int]:
        """Received messages refused so far, by reason (bad signature, replayed, stale...)."""
        return dict(self._link.refused)

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self, *, close_pipelines: bool = False, timeout: float = 5.0) -> None:
        """Stop everything this session started. The pipelines it made for ``run`` are
        archived; with ``close_pipelines`` also every pipeline it deployed or attached."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            closing = [p for p in self._exec.values() if p.config]
            if close_pipelines:
                closing += self._pipelines
        for pipeline in closing:
            try:
                if not pipeline.closed:
                    pipeline.close(timeout=min(timeout, 3.0))
            except SdkError as exc:
                log.warning("session %s: could not archive %s: %s", self.name, pipeline, exc)
        self._link.close(timeout)
        log.info("session %s closed", self.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- nodes ---------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        """Every node seen so far (by heartbeat or network map), online or not."""
        return self._link.directory.nodes()

    def node(self, node: str) -> NodeInfo | None:
        """A node by alias, 0xai address or Ethereum address; None if not seen."""
        return self._link.directory.find(node)

    def wait_for_node(
        self, node: NodeRef, timeout: float = 30.0, *, allowed: bool = True
    ) -> NodeInfo:
        """Wait until ``node`` is online (and, with ``allowed``, takes our commands).

        NodeNotFoundError: not seen (or offline); NodeNotAllowedError: secured, without us.
        """
        return self._link.wait_for_node(_name(node), timeout, allowed=allowed)

    def _target(self, node: NodeRef, timeout: float) -> NodeInfo:
        return self._link.target(_name(node), timeout)

    # ---- pipelines -----------------------------------------------------------------------

    def deploy(
        self,
        node: NodeRef,
        name: str,
        capture_type: str = "Void",
        *,
        capture: Mapping[str, Any] | None = None,
        plugins: Iterable[PluginSpec | Mapping[str, Any]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Pipeline:
        """Create (or update) pipeline ``name`` on ``node`` and wait for its confirmation.

        ``capture``: the capture's settings (``URL``, ``CAP_RESOLUTION``...); ``plugins``:
        ``PluginSpec`` s or dicts. DeployError names what the node refused and why.
        """
        deadline = time.monotonic() + timeout
        if not isinstance(name, str) or not name:
            raise ValueError(f"a pipeline name is a non-empty string, not {name!r}")
        config = {**wire_keys(capture or {}), "NAME": name, "TYPE": capture_type}
        instances = plugin_specs(plugins)
        info = self._target(node, timeout)
        pipeline = self._running(info, name, remaining(deadline))
        if pipeline is None:
            pipeline = Pipeline(self._link, info.address, info.alias or info.address, config)
        pipeline.stage(config, instances)
        pipeline.deploy(remaining(deadline))
        self._remember(pipeline)
        return pipeline

    def _running(self, info: NodeInfo, name: str, timeout: float) -> Pipeline | None:
        """Pipeline ``name`` as the node runs it, so a deploy sends (and awaits) only what
        changes; None when it runs no such pipeline or does not say in time."""
        if info.pipelines == 0:  # its heartbeat says it runs none
            return None
        try:
            return self._from_node(info, name, min(timeout / 2, PROBE_S))
        except NodeTimeoutError:
            log.info("node %s did not send its configs; deploying blind", info.address)
        except PipelineNotFoundError:
            pass
        return None

    def attach(self, node: NodeRef, name: str, timeout: float = DEFAULT_TIMEOUT) -> Pipeline:
        """A pipeline that already runs on ``node`` (its config read with GET_CONFIG)."""
        pipeline = self._from_node(self._target(node, timeout), name, timeout)
        self._remember(pipeline)
        return pipeline

    def _from_node(self, info: NodeInfo, name: str, timeout: float) -> Pipeline:
        label = info.alias or info.address
        configs = self._link.fetch_configs(info, timeout).pipelines
        for config in configs:
            if config.get("NAME") == name:
                instances = instances_of(config)
                return Pipeline(self._link, info.address, label, config, instances, confirmed=True)
        names = sorted(str(c.get("NAME")) for c in configs)
        raise PipelineNotFoundError(
            f"node {label!r} runs no pipeline {name!r} (it runs: {', '.join(names) or 'none'})",
            node=label,
            pipeline=name,
            available=names,
        )

    def pipelines(self, node: NodeRef, timeout: float = DEFAULT_TIMEOUT) -> list[PipelineInfo]:
        """The pipelines ``node`` runs, as it reports them (GET_CONFIG)."""
        info = self._target(node, timeout)
        found = self._link.fetch_configs(info, timeout)
        return [
            PipelineInfo.from_config(found.node, found.node_address, config, found.statuses)
            for config in found.pipelines
        ]

    def _remember(self, pipeline: Pipeline) -> None:
        with self._lock:
            self._pipelines = [p for p in self._pipelines if not p.closed] + [pipeline]

    # ---- models --------------------------------------------------------------------------

    def push_model(
        self,
        node: NodeRef,
        name: str,
        files: Mapping[str, str | os.PathLike[str]],
        *,
        version: str | None = None,
        task: str = "raw",
        options: Mapping[str, Any] | None = None,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        description: str = "",
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Send an ONNX model (``{"model": path, "tokenizer": path...}``) to ``node``'s
        registry in verified chunks and wait until it is stored; what the node says of it.

        ``version`` defaults to the first 12 hex digits of the model file's SHA-256.
        DeployError carries the node's reason (a hash mismatch, a bad manifest...).
        """
        from meshops.serving.registry import sha256_file
        from meshops.serving.spec import ModelManifest

        deadline = time.monotonic() + timeout
        paths = {role: Path(path).expanduser() for role, path in files.items()}
        if "model" not in paths:
            raise ConfigError("push_model: files needs a 'model' entry (the .onnx file)")
        for role, path in paths.items():
            if not path.is_file():
                raise ConfigError(f"push_model: {role} file not found: {path}")
        hashes = {role: sha256_file(path) for role, path in paths.items()}
        manifest = ModelManifest(
            name=name,
            version=version or hashes["model"][:12],
            task=task,
            files=hashes,
            options=dict(options or {}),
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            description=description,
        )
        info = self._target(node, remaining(deadline))
        label = info.alias or info.address
        uploads = {role: f"{os.urandom(6).hex()}-{role}"[:64] for role in paths}
        for role, path in paths.items():
            size = path.stat().st_size
            with path.open("rb") as f:
                # an empty file is still one (empty) chunk: the node must learn of it
                for offset in range(0, max(size, 1), MODEL_CHUNK_BYTES):
                    chunk = f.read(MODEL_CHUNK_BYTES)
                    self._link.command(
                        info.address,
                        label,
                        ADMIN_PIPELINE,
                        Command.MODEL_UPLOAD,
                        {
                            "OP": "CHUNK",
                            "UPLOAD_ID": uploads[role],
                            "SHA256": hashes[role],
                            "SIZE": size,
                            "OFFSET": offset,
                            "DATA": base64.b64encode(chunk).decode(),
                        },
                        [],
                        timeout=remaining(deadline),
                    )
        expect = Expect(
            NotificationCode.MODEL_STORED_OK,
            (NotificationCode.MODEL_STORED_FAILED,),
            ADMIN_PIPELINE,
        )
        self._link.command(
            info.address,
            label,
            ADMIN_PIPELINE,
            Command.MODEL_UPLOAD,
            {"OP": "COMMIT", "MANIFEST": manifest.model_dump(mode="json"), "UPLOADS": uploads},
            [expect],
            timeout=remaining(deadline),
        )
        return manifest.summary()

    def nodes_with_model(self, model: str) -> list[NodeInfo]:
        """Online nodes whose registry holds ``model`` (``name`` or ``name@version``), by
        their heartbeats: where a scheduler should send a pipeline that needs it."""
        name, _, version = model.partition("@")
        return [
            info
            for info in self.nodes()
            if info.online
            and any(
                m.get("NAME") == name and (not version or m.get("VERSION") == version)
                for m in info.models
            )
        ]

    # ---- payloads ------------------------------------------------------------------------

    def stream(
        self,
        node: NodeRef | None = None,
        pipeline: str | None = None,
        instance_id: str | None = None,
        timeout: float | None = None,
        *,
        signature: str | None = None,
    ) -> PayloadStream:
        """An iterator of verified payloads from now on (all, or of one node, pipeline or
        instance); it ends ``timeout`` s after it was made, when closed, or with the session."""
        self._link.check_open()
        selector = PayloadFilter(node and _name(node), pipeline, instance_id, signature)
        return self._link.router.open_stream(selector, timeout)

    def on_payload(
        self,
        callback: Callable[[Payload], None],
        *,
        node: NodeRef | None = None,
        pipeline: str | None = None,
        instance_id: str | None = None,
        signature: str | None = None,
    ) -> Subscription:
        """Call ``callback(payload)`` for matching payloads, on the session's callback thread."""
        self._link.check_open()
        selector = PayloadFilter(node and _name(node), pipeline, instance_id, signature)
        return self._link.router.add_callback(selector, callback)

    # ---- custom code ---------------------------------------------------------------------

    def run(
        self,
        node: NodeRef,
        code: Code,
        *,
        timeout: float = 20.0,
        pipeline: Pipeline | None = None,
    ) -> Any:
        """Run ``code`` (a function's body, or source text) once on ``node``; its result.

        Without ``pipeline`` it runs in a ``Void`` pipeline this session keeps per node (and
        archives when it closes). RemoteExecutionError carries the node's error text.
        """
        deadline = time.monotonic() + timeout
        if pipeline is not None:
            address = _name(node)
            if address not in (pipeline.node, pipeline.node_address):
                raise ValueError(f"{pipeline!r} does not run on node {address!r}")
            return pipeline.run(code, timeout=timeout)
        info = self._target(node, timeout)
        with self._lock:
            self._link.check_open()
            target = self._exec.get(info.address)
            if target is None or target.closed:
                config = {"NAME": f"meshops_exec_{self._link.uid}", "TYPE": "Void"}
                label = info.alias or info.address
                target = Pipeline(self._link, info.address, label, config)
                self._exec[info.address] = target
        return target.run(code, timeout=remaining(deadline))


def _name(node: NodeRef) -> str:
    return node.address if isinstance(node, NodeInfo) else node
