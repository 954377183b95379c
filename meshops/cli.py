"""The ``meshops`` command.

Only this module prints; library code logs. Each subcommand turns ``MeshOpsError``
into a one-line message on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from meshops._cli_common import console, err_console
from meshops._cli_common import fail as _fail
from meshops._version import __version__
from meshops.errors import ConfigError, MeshOpsError

if TYPE_CHECKING:
    from meshops.node.settings import NodeSettings
    from meshops.node.store import NodeStore

app = typer.Typer(
    name="meshops",
    help="MeshOps: run AI pipelines on a decentralized mesh of edge nodes.",
    no_args_is_help=True,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"meshops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    """MeshOps: run AI pipelines on a decentralized mesh of edge nodes."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


@app.command()
def broker(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 1883,
) -> None:
    """Run the embedded MQTT broker in the foreground until Ctrl-C."""
    from meshops.transport import EmbeddedBroker

    embedded = EmbeddedBroker(host=host, port=port)
    try:
        embedded.start()
    except MeshOpsError as exc:
        raise _fail(exc) from None
    console.print(f"MQTT broker listening on [bold]{embedded.url}[/] (Ctrl-C stops it)")
    try:
        _wait_for_signal()
    finally:
        embedded.stop()


node_app = typer.Typer(help="Run and manage an edge node.", no_args_is_help=True)
app.add_typer(node_app, name="node")

HomeOption = Annotated[
    Path,
    typer.Option("--home", help="Node folder: key, config store, outbox.", envvar="MESHOPS_HOME"),
]
DEFAULT_NODE_HOME = Path("~/.meshops/node")


def _settings(**values: Any) -> NodeSettings:
    from pydantic import ValidationError

    from meshops._validation import describe_validation_error
    from meshops.node.settings import NodeSettings

    try:
        return NodeSettings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise _fail(ConfigError(describe_validation_error(exc))) from None


@node_app.command("start")
def node_start(
    home: HomeOption = DEFAULT_NODE_HOME,
    alias: Annotated[str | None, typer.Option(help="Human name, at most 20 characters.")] = None,
    broker: Annotated[
        str | None, typer.Option(help="mqtt://HOST:PORT", envvar="MESHOPS_BROKER")
    ] = None,
    root_topic: Annotated[str | None, typer.Option(help="MQTT root topic.")] = None,
    supervisor: Annotated[bool, typer.Option(help="Keep and publish the network map.")] = False,
    unsecured: Annotated[
        bool, typer.Option("--unsecured", help="Obey any sender (default: owner + allow-list).")
    ] = False,
) -> None:
    """Start an edge node in the foreground until Ctrl-C or SIGTERM."""
    from meshops.node import Node

    settings = _settings(
        home=home,
        alias=alias,
        broker=broker,
        root_topic=root_topic,
        supervisor=supervisor or None,
        secured=False if unsecured else None,
    )
    try:
        node = Node(settings)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    console.print(
        f"node [bold]{node.alias}[/] {node.address} ({node.key.eth_address}) "
        f"on {settings.broker}{' [supervisor]' if settings.supervisor else ''}"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node.run_until(stop)


@node_app.command("address")
def node_address(home: HomeOption = DEFAULT_NODE_HOME) -> None:
    """Print the node's 0xai_ and Ethereum addresses (creating its key on first use)."""
    from meshops.node import load_or_create_key

    key = load_or_create_key(home.expanduser() / "node.pem")
    console.print(key.address)
    console.print(key.eth_address)


@contextlib.contextmanager
def _allow_list(home: Path, address: str) -> Iterator[tuple[NodeStore, str]]:
    """The node's store and ``address`` in its canonical form (one-line error if malformed)."""
    from meshops.node.store import NodeStore
    from meshops.protocol import parse_address

    try:
        normalised = parse_address(address)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    store = NodeStore(home.expanduser() / "node.db")
    try:
        yield store, normalised
    finally:
        store.close()


@node_app.command("allow")
def node_allow(
    address: Annotated[str, typer.Argument(help="0xai_ address to allow.")],
    alias: Annotated[str | None, typer.Argument(help="A name to remember it by.")] = None,
    home: HomeOption = DEFAULT_NODE_HOME,
) -> None:
    """Let ADDRESS command this node (takes effect at once, also on a running node)."""
    with _allow_list(home, address) as (store, normalised):
        store.allow(normalised, alias)
    console.print(f"allowed {normalised}" + (f" ({alias})" if alias else ""))


@node_app.command("disallow")
def node_disallow(
    address: Annotated[str, typer.Argument(help="0xai_ address to remove.")],
    home: HomeOption = DEFAULT_NODE_HOME,
) -> None:
    """Remove ADDRESS from the node's allow-list."""
    with _allow_list(home, address) as (store, normalised):
        removed = store.disallow(normalised)
    if not removed:
        raise _fail(ConfigError(f"{normalised} was not on the allow-list"))
    console.print(f"disallowed {normalised}")


# ---- pipeline files: validate, schema -------------------------------------------------------


@app.command()
def validate(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="Pipeline file: .yaml, .yml or .json.")
    ],
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="VAR=VALUE",
            help="Value of ${VAR} in the file (repeatable; wins over the environment).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a pipeline file against the installed plugins and capture types.

    Prints every problem with its line and path (PLUGINS[0].INSTANCES[1].THRESHOLD: ...)
    and exits with 1 if there is any.
    """
    import json

    from meshops.pipelines import PipelineFile, PipelineFileError, load_pipeline, parse_assignments

    try:
        variables = parse_assignments(assignments or [])
    except MeshOpsError as exc:
        raise _fail(ConfigError(f"--set: {exc}")) from None
    pipeline: PipelineFile | None = None
    try:
        pipeline = load_pipeline(file, variables)
        issues = pipeline.validate()
    except PipelineFileError as exc:
        issues = exc.issues
    if as_json:
        result = {
            "file": str(file),
            "valid": not issues,
            "pipeline": pipeline.name if pipeline else None,
            "nodes": list(pipeline.nodes) if pipeline else [],
            "instances": pipeline.instance_count if pipeline else 0,
            "errors": [issue.as_dict() for issue in issues],
            "config": pipeline.config if pipeline else None,
        }
        typer.echo(json.dumps(result, indent=2))
    elif issues:
        for issue in issues:
            err_console.print(issue.located(file), markup=False, emoji=False, highlight=False)
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        err_console.print(f"[bold red]error:[/] {escape(str(file))}: {count}")
    elif pipeline is not None:
        count = pipeline.instance_count
        instances = f"{count} instance{'s' if count != 1 else ''}"
        console.print(
            f"{file}: OK (pipeline {pipeline.name}, {instances})",
            markup=False,
            emoji=False,
            soft_wrap=True,
        )
    if issues:
        raise typer.Exit(code=1)


@app.command()
def schema(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME", help="A plugin signature or capture type; all of them when left out."
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of plugin and capture-type settings, for editors and tools.

    Without NAME: {"plugins": {SIGNATURE: schema}, "captures": {TYPE: schema}} for
    everything installed.
    """
    import json

    from meshops.pipelines import installed_schemas, schema_for

    try:
        document = installed_schemas() if name is None else schema_for(name)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(document, indent=2))


# ---- end of pipeline files ------------------------------------------------------------------


# ---- client commands: nodes, deploy, pipelines, stream, close, exec (logic in _cli_client) --

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
"""What ``meshops up`` starts."""
BrokerOption = Annotated[
    str,
    typer.Option("--broker", help="mqtt://HOST:PORT of the network.", envvar="MESHOPS_BROKER"),
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", metavar="PATH", help="Client key (PEM); default ~/.meshops/client.pem."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
NodeOption = Annotated[str, typer.Option("--node", help="Alias or address of the node.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the node(s).")
]


@contextlib.contextmanager
def _client(broker: str, key: Path | None, as_json: bool) -> Iterator[Any]:
    """A ``_cli_client.Client``; any MeshOpsError (or bad argument) becomes ``error: ...``."""
    from meshops._cli_client import Client

    try:
        yield Client(broker, key, as_json, console, err_console)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    except ValueError as exc:  # the SDK's argument checks (a bad name, empty code)
        raise _fail(ConfigError(str(exc))) from None
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        raise typer.Exit(code=130) from None


@app.command()
def nodes(
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="Seconds to listen (nodes heartbeat every 5 s)."),
    ] = 6.0,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the nodes heard within --wait seconds: alias, address, state, resources."""
    with _client(broker, key, as_json) as client:
        client.nodes(wait)


@app.command()
def deploy(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Pipeline file (.yaml, .json).")],
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="Target node (repeatable); default: the file's node(s)."),
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="VAR=VALUE", help="Value of ${VAR} in the file."),
    ] = None,
    timeout: TimeoutOption = 30.0,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a pipeline file and deploy it, waiting for each node's confirmation.

    An invalid file is never sent: every problem is printed with its path, exit code 1.
    """
    from meshops.pipelines import parse_assignments

    try:
        variables = parse_assignments(assignments or [])
    except MeshOpsError as exc:
        raise _fail(ConfigError(f"--set: {exc}")) from None
    with _client(broker, key, as_json) as client:
        deployed = client.deploy(file, node or [], variables, timeout)
    if not deployed:
        raise typer.Exit(code=1)


@app.command()
def pipelines(
    node: Annotated[
        str | None, typer.Option("--node", help="One node; default: every allowed node.")
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to discover nodes (without --node).")
    ] = 6.0,
    timeout: TimeoutOption = 15.0,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the pipelines a node runs, or those of every node that takes our commands."""
    with _client(broker, key, as_json) as client:
        client.pipelines(node, wait, timeout)


@app.command()
def stream(
    node: Annotated[str | None, typer.Option("--node", help="Only this node's payloads.")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only this pipeline's payloads.")
    ] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="Only this instance's payloads.")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after N payloads.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.1, help="Stop after S seconds.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per payload.")] = False,
) -> None:
    """Print verified payloads as they arrive, until --count, --timeout or Ctrl-C.

    Exits with 1 if --count payloads did not come before the end.
    """
    with _client(broker, key, as_json) as client:
        client.stream(node, pipeline, instance, count, timeout)


@app.command()
def close(
    pipeline: Annotated[str, typer.Argument(metavar="PIPELINE", help="Name of the pipeline.")],
    node: NodeOption,
    timeout: TimeoutOption = 15.0,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Archive a pipeline on a node and wait for the node's confirmation."""
    with _client(broker, key, as_json) as client:
        client.close(pipeline, node, timeout)


@app.command("exec")
def exec_(
    file: Annotated[
        Path, typer.Argument(metavar="FILE.py", help="Code to run: a function body using plugin.")
    ],
    node: NodeOption,
    timeout: TimeoutOption = 20.0,
    broker: BrokerOption = DEFAULT_BROKER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run FILE.py once on a node and print what it returns (JSON).

    The file is a function body: it may use `plugin` and `return` a value. Exits with 1
    and the node's error when the code raises there.
    """
    with _client(broker, key, as_json) as client:
        client.exec(file, node, timeout)


# ---- end of client commands -----------------------------------------------------------------


# ---- meshops up / down ----------------------------------------------------------------------

UP_HOME = Path("~/.meshops/up")


@app.command()
def up(
    nodes: Annotated[int, typer.Option("--nodes", min=0, help="Worker nodes to start.")] = 2,
    home: Annotated[
        Path, typer.Option(help="Where the network keeps its nodes, logs and state.")
    ] = UP_HOME,
    port: Annotated[int, typer.Option(help="Broker TCP port; 0 picks a free one.")] = 1883,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Deploy no demo pipeline.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once healthy; `meshops down` stops it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for health.")] = 30.0,
    chain: Annotated[
        str | None, typer.Option("--chain", metavar="URL", help="Use this dev chain (JSON-RPC).")
    ] = None,
    no_chain: Annotated[bool, typer.Option("--no-chain", help="Start no chain.")] = False,
    epoch: Annotated[int, typer.Option("--epoch", min=1, help="Epoch length in seconds.")] = 10,
) -> None:
    """Start a local network: the embedded broker and chain, a supervisor and N worker nodes."""
    from rich.table import Table

    from meshops.local import LocalNetwork

    try:
        network = LocalNetwork(
            home,
            port=port,
            workers=nodes,
            chain=None if no_chain else (chain or "embedded"),
            epoch_seconds=epoch,
        )
    except MeshOpsError as exc:
        raise _fail(exc) from None
    try:
        with console.status("starting the broker and the nodes..."):
            info = network.start(timeout=timeout, demo=not no_demo)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:  # start() has stopped what it started
        raise typer.Exit(code=130) from None
    took = f" first demo payload after {info.first_payload_s:.2f} s" if info.demo else ""
    console.print(f"[green]MeshOps is up.[/] Broker: [bold]{info.broker_url}[/]{took}")
    table = Table("node", "role", "pid", box=None)
    table.add_column("address", overflow="fold")  # never cut an address short
    for node in info.nodes:
        table.add_row(node.alias, node.role, str(node.pid), node.address)
    console.print(table, soft_wrap=True)
    console.print(
        f"Client key {info.client_address} commands every node. Logs: {info.log_dir}",
        soft_wrap=True,
    )
    if info.demo:
        console.print(
            f"Demo pipeline [bold]{info.demo['pipeline']}[/] runs on {info.demo['node']}."
        )
    if info.deployment:
        console.print(
            f"Chain: [bold]{info.chain_url}[/], {info.epoch_seconds} s epochs; try "
            "[bold]meshops wallet[/], [bold]meshops rewards status[/]",
            soft_wrap=True,
        )
    console.print("Try: [bold]meshops nodes[/], [bold]meshops stream[/], [bold]meshops down[/]")
    if detach:
        return
    console.print("Ctrl-C stops everything.")
    try:
        _wait_for_signal()
    finally:
        with console.status("stopping..."):
            network.stop()
        console.print("MeshOps stopped.")


# ---- models: prepare, add, list, push, remove (logic in _cli_models) -----------------------

from meshops._cli_models import models_app  # noqa: E402

app.add_typer(models_app, name="models")


# ---- token layer: wallet, license, rewards, escrow (logic in _cli_chain) --------------------

from meshops._cli_chain import escrow_app, license_app, rewards_app, wallet  # noqa: E402

app.command("wallet")(wallet)
app.add_typer(license_app, name="license")
app.add_typer(rewards_app, name="rewards")
app.add_typer(escrow_app, name="escrow")


@app.command()
def down(
    home: Annotated[Path, typer.Option(help="The folder `meshops up` used.")] = UP_HOME,
    timeout: Annotated[float, typer.Option(help="Seconds before stragglers are killed.")] = 15.0,
) -> None:
    """Stop the local network that `meshops up` started (also one started with --detach)."""
    from meshops.local import stop

    try:
        info = stop(home, timeout=timeout)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    chain = " and the chain" if info.chain else ""
    console.print(
        f"MeshOps stopped ({len(info.nodes)} nodes, the broker on {info.broker_url}{chain})."
    )


if __name__ == "__main__":
    app()
