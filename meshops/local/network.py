"""``LocalNetwork``: the embedded broker, a supervisor and N workers as separate processes."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from meshops.errors import ConfigError, MeshOpsError
from meshops.local.chain import (
    BEHIND_S,
    ChainPlan,
    chain_head_time,
    deployment_path,
    majority,
    set_up_chain,
)
from meshops.local.control import DEFAULT_HOME, resolve_home, status, stop
from meshops.local.health import HeartbeatWatcher
from meshops.local.procs import HOST, check_port_free, free_port, log_tail, port_accepts, spawn
from meshops.local.procs import terminate as terminate_procs
from meshops.local.state import STATE_FILE, LocalNode, NetworkInfo
from meshops.protocol import NodeKey

if TYPE_CHECKING:
    from meshops.sdk import Session

__all__ = ["DEFAULT_HOME", "DEMO_PIPELINE", "LocalNetwork", "status", "stop"]

log = logging.getLogger(__name__)

DEMO_PIPELINE = "demo"
SUPERVISOR = "supervisor"
DEMO_PLUGIN = {
    "signature": "ECHO_01",
    "instance_id": "echo",
    "process_delay": 1,
    "allow_empty_inputs": True,
}


class LocalNetwork:
    """A local MeshOps network: ``start()`` it, ``stop()`` it (or ``meshops down``).

    Everything lives under ``home``: ``network.json`` (what runs: pids, ports, addresses),
    one folder per node (its key and store), and ``logs/`` (each child's output).
    ``client_key`` (default: the SDK's ``~/.meshops/client.pem``) is put on every node's
    allow-list, so the SDK and the CLI command the nodes with no further step.

    ``chain``: ``"embedded"`` starts the embedded EVM as a child process (``meshops up`` does
    by default), a URL uses that dev chain, None (default) starts none. With a chain every
    node is an availability oracle with epochs of ``epoch_seconds``, and the token layer is
    deployed and funded once the nodes run (``meshops.local.chain``).
    """

    def __init__(
        self,
        home: Path | str = DEFAULT_HOME,
        *,
        port: int = 1883,
        workers: int = 2,
        client_key: NodeKey | None = None,
        chain: str | None = None,
        epoch_seconds: int = 10,
    ) -> None:
        if epoch_seconds < 1:
            raise ConfigError(f"epoch_seconds must be >= 1, not {epoch_seconds}")
        if chain not in (None, "embedded") and not chain.startswith(("http://", "https://")):
            raise ConfigError(f"chain must be an http(s):// JSON-RPC URL, not {chain!r}")
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, not {workers}")
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {port}")
        self.home = resolve_home(home)
        self.port = port
        self.workers = workers
        self._client_key = client_key
        self.chain = chain
        self.epoch_seconds = epoch_seconds
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self.info: NetworkInfo | None = None

    @property
    def aliases(self) -> list[str]:
        return [SUPERVISOR, *(f"worker-{i}" for i in range(1, self.workers + 1))]

    @property
    def demo_node(self) -> str:
        """Where the demo pipeline runs: the first worker (the supervisor if there is none)."""
        return self.aliases[1] if self.workers else SUPERVISOR

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    # ---- start ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0, *, demo: bool = True) -> NetworkInfo:
        """Start everything and wait until it is healthy (and, with ``demo``, until the demo
        pipeline's first payload). On any failure, whatever was started is stopped again."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._check_home()
        port = free_port() if self.port == 0 else self.port
        check_port_free(port)
        client = self._load_client_key()
        keys = {alias: self._prepare_node(alias, client) for alias in self.aliases}
        plan = self._chain_plan(keys)
        try:
            info = self._start(port, client, keys, deadline, demo=demo, t0=t0, plan=plan)
        except BaseException:
            self._cleanup()
            raise
        self.info = info
        return info

    def _chain_plan(self, keys: dict[str, NodeKey]) -> ChainPlan | None:
        if self.chain is None:
            return None
        oracles = sorted(key.eth_address for key in keys.values())
        deployment_path(self.home).unlink(missing_ok=True)  # a previous network's
        if self.chain == "embedded":
            url, embedded = f"http://{HOST}:{free_port()}", True
            genesis = int(time.time()) - BEHIND_S - 1  # at or before the chain's first block
        else:
            url, embedded = self.chain, False
            genesis = min(chain_head_time(url), int(time.time()))
        return ChainPlan(url, embedded, genesis, self.epoch_seconds, oracles, majority(len(keys)))

    def _check_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        info = NetworkInfo.load(self.home)
        if info is None:
            return
        running = info.alive()
        if running:
            pids = ", ".join(f"{p.alias} {p.pid}" for p in running)
            raise ConfigError(
                f"a MeshOps network from {self.home} is already running (pids: {pids}) on "
                f"{info.broker_url}; stop it first with: meshops down --home {self.home}"
            )
        log.warning("removing the stale state of a network that no longer runs: %s", info.home)
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def _load_client_key(self) -> NodeKey:
        if self._client_key is not None:
            return self._client_key
        from meshops.sdk.keys import load_client_key

        return load_client_key()

    def _prepare_node(self, alias: str, client: NodeKey) -> NodeKey:
        """Make the node's key (so its address is known before it starts) and allow the
        client on it. ConfigError naming the node if its home is unusable."""
        from meshops.node import load_or_create_key
        from meshops.node.store import NodeStore

        node_home = self.home / alias
        try:
            node_home.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = load_or_create_key(node_home / "node.pem")
            store = NodeStore(node_home / "node.db")
            try:
                store.allow(client.address, "meshops-up client")
            finally:
                store.close()
        except (OSError, MeshOpsError) as exc:
            raise ConfigError(f"node {alias} cannot start: its home {node_home}: {exc}") from exc
        return key

    def _start(
        self,
        port: int,
        client: NodeKey,
        keys: dict[str, NodeKey],
        deadline: float,
        *,
        demo: bool,
        t0: float,
        plan: ChainPlan | None,
    ) -> NetworkInfo:
        url = f"mqtt://{HOST}:{port}"
        proc, broker = spawn("broker", ["broker", "--port", str(port)], self.log_dir, role="broker")
        self._popen["broker"] = proc
        info = NetworkInfo(
            str(self.home),
            url,
            port,
            broker,
            client_address=client.address,
            log_dir=str(self.log_dir),
        )
        if plan is not None:
            info.chain_url = plan.url
            info.epoch_seconds, info.epoch_genesis = plan.epoch_seconds, plan.genesis
            if plan.embedded:
                info.chain = self._spawn_chain(plan.url)
        info.save()
        self._wait_broker(port, deadline)
        watcher = HeartbeatWatcher(port, set(keys.values()))
        session = None
        try:
            watcher.start(deadline)
            if demo:
                from meshops.sdk import Session

                session = Session(url, key=client, name="meshops-up", connect_timeout=5.0)
            for alias, key in keys.items():
                info.nodes.append(self._spawn_node(alias, key, url, plan))
                info.save()
            self._wait_nodes(info, watcher, deadline)
            if session is not None:
                info.first_payload_s = self._deploy_demo(session, deadline, t0)
                info.demo = {"node": self.demo_node, "pipeline": DEMO_PIPELINE}
        finally:
            watcher.stop()
            if session is not None:
                session.close(timeout=2.0)
        if plan is not None:
            info.deployment = str(self._set_up_chain(plan, client, list(keys.values()), deadline))
        info.state = "running"
        info.save()
        return info

    def _spawn_chain(self, url: str) -> LocalNode:
        port = url.rsplit(":", 1)[1]
        args = ["--port", port, "--behind", str(BEHIND_S), "--block-time", "1"]
        proc, node = spawn("chain", args, self.log_dir, role="chain", module="meshops.chain.serve")
        self._popen["chain"] = proc
        return node

    def _set_up_chain(
        self, plan: ChainPlan, client: NodeKey, keys: list[NodeKey], deadline: float
    ) -> Path:
        try:
            return set_up_chain(plan, self.home, client, keys, deadline)
        except MeshOpsError as exc:
            code = self._exited("chain")
            if code is not None:
                raise self._failed("chain", f"the chain exited (code {code})") from exc
            raise

    def _node_env(self, plan: ChainPlan | None) -> dict[str, str]:
        # One model registry for every local node: `meshops models prepare` (whose default
        # registry is this folder) makes the zoo's models servable on all of them.
        models = {"MESHOPS_MODELS_DIR": str(self.home / "models")}
        if plan is None:
            return models
        return {
            **models,
            "MESHOPS_ORACLE": "true",
            "MESHOPS_ORACLES": json.dumps(plan.oracles),
            "MESHOPS_ORACLE_THRESHOLD": str(plan.threshold),
            "MESHOPS_EPOCH_SECONDS": str(plan.epoch_seconds),
            "MESHOPS_EPOCH_GENESIS": str(plan.genesis),
            "MESHOPS_HEARTBEAT_INTERVAL_S": str(plan.heartbeat_interval_s),
            "MESHOPS_CHAIN_DEPLOYMENT": str(deployment_path(self.home)),
        }

    def _spawn_node(self, alias: str, key: NodeKey, url: str, plan: ChainPlan | None) -> LocalNode:
        node_home = self.home / alias
        args = ["node", "start", "--home", str(node_home), "--alias", alias, "--broker", url]
        if alias == SUPERVISOR:
            args.append("--supervisor")
        role = "supervisor" if alias == SUPERVISOR else "worker"
        env = self._node_env(plan)
        proc, node = spawn(alias, args, self.log_dir, role=role, home=node_home, env=env)
        self._popen[alias] = proc
        return LocalNode(
            alias, role, node.pid, node.started, str(node_home), key.address, key.eth_address
        )

    def _failed(self, name: str, what: str) -> ConfigError:
        log_path = self.log_dir / f"{name}.log"
        return ConfigError(f"{what}; the end of {log_path}:\n{log_tail(log_path)}")

    def _exited(self, name: str) -> int | None:
        proc = self._popen.get(name)
        return None if proc is None else proc.poll()

    def _wait_broker(self, port: int, deadline: float) -> None:
        while not port_accepts(port):
            code = self._exited("broker")
            if code is not None:
                raise self._failed("broker", f"the broker on port {port} exited (code {code})")
            if time.monotonic() > deadline:
                raise self._failed("broker", f"the broker did not listen on port {port} in time")
            time.sleep(0.05)

    def _wait_nodes(self, info: NetworkInfo, watcher: HeartbeatWatcher, deadline: float) -> None:
        while True:
            missing = [n for n in info.nodes if n.address not in watcher.seen]
            if not missing:
                return
            for node in missing:
                code = self._exited(node.alias)
                if code is not None:
                    raise self._failed(node.alias, f"node {node.alias} exited (code {code})")
            if self._exited("broker") is not None:
                raise self._failed("broker", "the broker exited while the nodes were starting")
            if time.monotonic() > deadline:
                names = ", ".join(n.alias for n in missing)
                raise self._failed(
                    missing[0].alias, f"node {names} did not come up (no heartbeat in time)"
                )
            watcher.changed.wait(0.1)
            watcher.changed.clear()

    def _deploy_demo(self, session: Session, deadline: float, t0: float) -> float:
        target = self.demo_node
        left = max(deadline - time.monotonic(), 0.1)
        stream = session.stream(target, pipeline=DEMO_PIPELINE, timeout=left)
        try:
            session.deploy(
                target,
                DEMO_PIPELINE,
                "Void",
                plugins=[DEMO_PLUGIN],
                timeout=left,
            )
            payload = stream.get(timeout=max(deadline - time.monotonic(), 0.1))
        finally:
            stream.close()
        if payload is None:
            raise self._failed(target, f"the demo pipeline on {target} sent no payload in time")
        return round(time.monotonic() - t0, 3)

    # ---- stop ----------------------------------------------------------------------------

    def _cleanup(self) -> None:
        """Stop whatever a failed start() started; remove its state file."""
        try:
            info = NetworkInfo.load(self.home)
        except ConfigError:  # never hide the error that made start() fail
            info = None
        terminate_procs(info.processes if info is not None else [], timeout=5.0)
        for proc in self._popen.values():  # also any child that never made it to the file
            if proc.poll() is None:
                proc.kill()
            proc.wait(5.0)
        self._popen.clear()
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def status(self) -> NetworkInfo | None:
        return status(self.home)

    def stop(self, timeout: float = 15.0) -> NetworkInfo:
        info = stop(self.home, timeout)
        for proc in self._popen.values():
            proc.poll()  # reap
        self._popen.clear()
        return info
