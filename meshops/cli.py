"""The ``meshops`` command.

Only this module prints; library code logs. Each subcommand turns ``MeshOpsError``
into a one-line message on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from meshops._version import __version__
from meshops.errors import MeshOpsError

app = typer.Typer(
    name="meshops",
    help="MeshOps: run AI pipelines on a decentralized mesh of edge nodes.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


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


def _fail(error: MeshOpsError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


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


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Broker TCP port; 0 picks a free one.")] = 1883,
) -> None:
    """Start a local MeshOps network: for now the embedded broker (nodes come with the edge node)."""
    from meshops.transport import EmbeddedBroker

    embedded = EmbeddedBroker(host="127.0.0.1", port=port)
    try:
        embedded.start()
    except MeshOpsError as exc:
        raise _fail(exc) from None
    console.print(f"[green]MeshOps is up.[/] Broker: [bold]{embedded.url}[/]")
    console.print("Connect any MQTT 3.1.1 client or the ratio1 SDK to it. Ctrl-C stops everything.")
    try:
        _wait_for_signal()
    finally:
        embedded.stop()
        console.print("MeshOps stopped.")


if __name__ == "__main__":
    app()
