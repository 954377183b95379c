"""The client commands of ``meshops`` (nodes, deploy, pipelines, stream, close, exec).

Each command opens one SDK :class:`~meshops.sdk.Session` on ``--broker`` with ``--key``,
does one thing, prints it (a rich table, or JSON with ``--json``) and closes the session.
Spinners go to stderr so that stdout holds only the result. Errors are left to the caller
(``meshops.cli``), which turns every ``MeshOpsError`` into a one-line ``error: ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meshops.errors import ConfigError
from meshops.pipelines import PipelineFile, PipelineFileError, load_valid_pipeline
from meshops.sdk import NodeInfo, Payload, PipelineInfo, Session
from meshops.sdk.transactions import remaining

__all__ = ["Client", "IncompleteStream"]

CONNECT_TIMEOUT_S = 5.0
POLL_S = 0.2


class IncompleteStream(ConfigError):
    """``stream --count N`` ended (timeout) before N payloads came."""


@dataclass
class Client:
    """What every client command shares: where to connect, as whom, and how to print."""

    broker: str
    key: Path | None
    as_json: bool
    out: Console
    err: Console

    # ---- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self.err.status(f"connecting to {escape(self.broker)}..."):
            session = Session(self.broker, key=self.key, connect_timeout=CONNECT_TIMEOUT_S)
        try:
            yield session
        finally:
            session.close(timeout=3.0)

    def _json(self, value: Any, indent: int | None = 2) -> None:
        """Plain JSON on stdout: never wrapped or coloured, for scripts."""
        typer.echo(json.dumps(value, indent=indent, default=str))

    def _target(self, session: Session, node: str, deadline: float) -> NodeInfo:
        with self.err.status(f"waiting for node {escape(node)}..."):
            return session.wait_for_node(node, timeout=remaining(deadline))

    def _discover(self, session: Session, wait: float) -> list[NodeInfo]:
        """The nodes seen within ``wait`` s (heartbeats and network maps take a moment)."""
        deadline = time.monotonic() + wait
        with self.err.status("discovering nodes...") as status:
            while (left := remaining(deadline)) > 0:
                status.update(f"discovering nodes... {len(session.nodes())} seen")
                time.sleep(min(POLL_S, left))
        return sorted(session.nodes(), key=lambda n: (not n.supervisor, n.alias or n.address))

    # ---- commands ------------------------------------------------------------------------

    def nodes(self, wait: float) -> None:
        with self.session() as session:
            found = self._discover(session, wait)
        if self.as_json:
            self._json([_node_dict(n) for n in found])
            return
        if not found:
            self.err.print(f"no node seen on {escape(self.broker)} within {wait:g} s")
            return
        table = Table("alias", "address", "online", "allowed", "supervisor", "cpu", "memory")
        table.add_column("pipelines", justify="right")
        for n in found:
            table.add_row(
                escape(n.alias or "-"),
                n.address,
                _yes(n.online),
                _yes(n.allowed),
                "yes" if n.supervisor else "",
                _cpu(n),
                _memory(n),
                "-" if n.pipelines is None else str(n.pipelines),
            )
        self.out.print(table)

    def deploy(
        self,
        file: Path,
        nodes: Sequence[str],
        variables: dict[str, str],
        timeout: float,
    ) -> bool:
        """Deploy the file to its nodes; False (after printing every problem) if invalid."""
        try:
            pipeline = load_valid_pipeline(file, variables)
        except PipelineFileError as exc:
            for issue in exc.issues:
                self.err.print(issue.located(file), markup=False, emoji=False, highlight=False)
            count = len(exc.issues)
            problems = f"{count} problem{'s' if count != 1 else ''}"
            self.err.print(f"[bold red]error:[/] {escape(str(file))}: {problems}; nothing sent")
            return False
        targets = list(nodes) or list(pipeline.nodes)
        if not targets:
            raise ConfigError(f"{file}: the file names no node; give --node NODE")
        deadline = time.monotonic() + timeout
        done = []
        with self.session() as session:
            for target in targets:
                info = self._target(session, target, deadline)
                label = info.alias or info.address
                with self.err.status(f"deploying {pipeline.name} to {escape(label)}..."):
                    deployed = _deploy(session, info, pipeline, remaining(deadline))
                instances = [f"{s.signature}/{s.instance_id}" for s in deployed.instances]
                done.append({"node": info.alias, "address": info.address, "instances": instances})
                if not self.as_json:
                    self.out.print(
                        f"[green]deployed[/] pipeline [bold]{escape(deployed.name)}[/] to node "
                        f"[bold]{escape(label)}[/] ({info.address}): "
                        f"{escape(', '.join(instances) or 'no instances')}",
                        soft_wrap=True,
                    )
        if self.as_json:
            self._json({"file": str(file), "pipeline": pipeline.name, "deployed": done})
        return True

    def pipelines(self, node: str | None, wait: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        found: list[PipelineInfo] = []
        with self.session() as session:
            if node is not None:
                targets = [self._target(session, node, deadline)]
            else:
                seen = self._discover(session, wait)
                targets = [n for n in seen if n.online and n.allowed]
            for info in targets:
                label = info.alias or info.address
                with self.err.status(f"asking {escape(label)} for its pipelines..."):
                    found += session.pipelines(info, timeout=remaining(deadline))
        if self.as_json:
            self._json([_pipeline_dict(p) for p in found])
            return
        if not found:
            where = f"node {node}" if node else f"{len(targets)} allowed node(s)"
            self.err.print(f"no pipelines on {escape(where)}")
            return
        table = Table("node", "pipeline", "type", "instances", "initiator", "updated")
        for p in found:
            table.add_row(
                escape(p.node or p.node_address),
                escape(p.name),
                escape(p.capture_type or "-"),
                escape(", ".join(f"{i.signature}/{i.instance_id}" for i in p.instances)),
                escape(p.initiator or "-"),
                escape(p.last_update or "-"),
            )
        self.out.print(table)

    def stream(
        self,
        node: str | None,
        pipeline: str | None,
        instance: str | None,
        count: int | None,
        timeout: float | None,
    ) -> None:
        """Print payloads until ``count`` came, ``timeout`` passed, or Ctrl-C."""
        received = 0
        with self.session() as session, session.stream(node, pipeline, instance, timeout) as s:
            what = "/".join(x for x in (node, pipeline, instance) if x) or "all nodes"
            if not self.as_json:
                self.err.print(f"streaming payloads of {escape(what)} (Ctrl-C stops)")
            with contextlib.suppress(KeyboardInterrupt):
                for payload in s:
                    self._payload(payload)
                    received += 1
                    if count is not None and received >= count:
                        break
                else:
                    if count is not None:
                        within = (
                            "before the stream ended"
                            if timeout is None
                            else f"within {timeout:g} s"
                        )
                        raise IncompleteStream(
                            f"{received} of {count} payloads from {what} {within}"
                        )

    def _payload(self, payload: Payload) -> None:
        if self.as_json:
            self._json(_payload_dict(payload), indent=None)
            return
        when = payload.timestamp.strftime("%H:%M:%S") if payload.timestamp else "--:--:--"
        where = f"{payload.node or payload.node_address}/{payload.pipeline}/{payload.instance_id}"
        body = json.dumps(payload.data, default=str)
        self.out.print(f"[dim]{when}[/] [bold]{escape(where)}[/] {escape(body)}", soft_wrap=True)

    def close(self, pipeline: str, node: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.session() as session:
            info = self._target(session, node, deadline)
            label = info.alias or info.address
            with self.err.status(f"closing {escape(pipeline)} on {escape(label)}..."):
                session.attach(info, pipeline, timeout=remaining(deadline)).close(
                    timeout=remaining(deadline)
                )
        if self.as_json:
            self._json({"pipeline": pipeline, "node": info.alias, "address": info.address})
        else:
            self.out.print(
                f"[green]closed[/] pipeline [bold]{escape(pipeline)}[/] on node "
                f"[bold]{escape(label)}[/] ({info.address})",
                soft_wrap=True,
            )

    def exec(self, file: Path, node: str, timeout: float) -> None:
        try:
            code = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from exc
        if not code.strip():
            raise ConfigError(f"{file} is empty")
        deadline = time.monotonic() + timeout
        with self.session() as session:
            info = self._target(session, node, deadline)
            label = info.alias or info.address
            with self.err.status(f"running {escape(file.name)} on {escape(label)}..."):
                result = session.run(info, code, timeout=remaining(deadline))
        if self.as_json:
            self._json({"node": info.alias, "address": info.address, "result": result})
        else:
            self._json(result)


def _deploy(session: Session, info: NodeInfo, pipeline: PipelineFile, timeout: float):
    config = dict(pipeline.config)
    name, capture_type = config.pop("NAME"), config.pop("TYPE")
    plugins = config.pop("PLUGINS", [])
    return session.deploy(
        info, name, capture_type, capture=config, plugins=plugins, timeout=timeout
    )


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def _cpu(node: NodeInfo) -> str:
    r = node.resources
    cores = f"{r.cpu_cores} cores" if r.cpu_cores is not None else ""
    used = f"{r.cpu_used_percent:.0f}%" if r.cpu_used_percent is not None else ""
    return " ".join(x for x in (cores, used) if x) or "-"


def _memory(node: NodeInfo) -> str:
    r = node.resources
    if r.memory_total_gb is None:
        return "-"
    if r.memory_available_gb is None:
        return f"{r.memory_total_gb:.1f} GB"
    return f"{r.memory_available_gb:.1f}/{r.memory_total_gb:.1f} GB free"


def _node_dict(node: NodeInfo) -> dict[str, Any]:
    fields = dataclasses.asdict(node)
    fields["whitelist"] = list(node.whitelist)
    return fields


def _pipeline_dict(pipeline: PipelineInfo) -> dict[str, Any]:
    return {
        "node": pipeline.node,
        "node_address": pipeline.node_address,
        "name": pipeline.name,
        "type": pipeline.capture_type,
        "instances": [
            {"signature": i.signature, "instance_id": i.instance_id, "config": i.config}
            for i in pipeline.instances
        ],
        "initiator": pipeline.initiator,
        "last_update": pipeline.last_update,
        "config": pipeline.config,
    }


def _payload_dict(payload: Payload) -> dict[str, Any]:
    return {
        "node": payload.node,
        "node_address": payload.node_address,
        "pipeline": payload.pipeline,
        "signature": payload.signature,
        "instance_id": payload.instance_id,
        "timestamp": payload.timestamp.isoformat() if payload.timestamp else None,
        "data": payload.data,
    }
