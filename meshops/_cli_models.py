"""``meshops models``: prepare, add, list, push and remove models.

A registry is a folder (``meshops.serving.ModelRegistry``). By default the commands use the
one ``meshops up`` gives its nodes (``~/.meshops/up/models``), so ``meshops models prepare``
followed by ``meshops up`` serves the zoo's models on every local node; ``--registry`` names
another (a node's own is ``<node home>/models``). ``push`` sends a model from the local
registry to a node over the network, in verified chunks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from meshops._cli_common import console, err_console
from meshops._cli_common import fail as _fail
from meshops.errors import ConfigError, MeshOpsError
from meshops.serving.catalog import DEFAULT_MODELS
from meshops.serving.spec import TASKS, ModelManifest

__all__ = ["models_app"]

DEFAULT_REGISTRY = Path("~/.meshops/up/models")

models_app = typer.Typer(
    help="Models: prepare the zoo, add, list, push, remove.", no_args_is_help=True
)

RegistryOption = Annotated[
    Path,
    typer.Option(
        "--registry",
        help="Registry folder (meshops up's nodes share the default).",
        envvar="MESHOPS_MODELS_DIR",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _registry(path: Path):
    from meshops.serving import ModelRegistry

    return ModelRegistry(path)


def _rows(manifests: list[ModelManifest], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in manifests], indent=2))
        return
    table = Table(title=title)
    for column in ("model", "version", "backend", "task", "batch", "description"):
        table.add_column(column)
    for m in manifests:
        table.add_row(
            m.name,
            m.version,
            m.backend,
            m.task,
            f"{m.max_batch} / {m.max_wait_ms:g} ms",
            m.description[:60],
        )
    console.print(table)


@models_app.command("prepare")
def prepare(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[MODEL]...", help=f"Default: {', '.join(DEFAULT_MODELS)}."),
    ] = None,
    registry: RegistryOption = DEFAULT_REGISTRY,
    work: Annotated[
        Path | None,
        typer.Option("--work", help="Where exports are built (default: <registry>/exports)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export the zoo's real models to ONNX (offline; needs meshops[models]) and register them."""
    from meshops.serving.catalog import prepare_models

    wanted = names or list(DEFAULT_MODELS)
    try:
        reg = _registry(registry)
        started = time.perf_counter()
        with err_console.status(f"exporting {', '.join(wanted)} (torch, CPU)..."):
            manifests = prepare_models(
                reg, wanted, work_dir=(work or reg.root / "exports").expanduser()
            )
        elapsed = time.perf_counter() - started
    except MeshOpsError as exc:
        raise _fail(exc) from None
    _rows(manifests, as_json, f"prepared in {elapsed:.1f} s into {reg.root}")


@models_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Model name.")],
    file: Annotated[Path, typer.Argument(help="The .onnx file.")],
    task: Annotated[str, typer.Option(help=f"One of {', '.join(TASKS)}.")] = "raw",
    version: Annotated[str | None, typer.Option(help="Default: 12 hex of its SHA-256.")] = None,
    tokenizer: Annotated[
        Path | None, typer.Option(help="tokenizer.json (text-embedding models).")
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, max=1024)] = 8,
    max_wait_ms: Annotated[float, typer.Option(min=0, max=10_000)] = 5.0,
    registry: RegistryOption = DEFAULT_REGISTRY,
    as_json: JsonOption = False,
) -> None:
    """Add a local ONNX file to a registry."""
    from meshops.serving import sha256_file

    files = {"model": file} | ({"tokenizer": tokenizer} if tokenizer else {})
    try:
        for role, path in files.items():
            if not path.expanduser().is_file():
                raise ConfigError(f"{role} file not found: {path}")
        reg = _registry(registry)
        manifest = reg.add(
            name,
            files,
            version=version or sha256_file(file.expanduser())[:12],
            task=task,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
    except MeshOpsError as exc:
        raise _fail(exc) from None
    _rows([manifest], as_json, f"added to {reg.root}")


@models_app.command("list")
def list_(registry: RegistryOption = DEFAULT_REGISTRY, as_json: JsonOption = False) -> None:
    """The models of a registry (the built-in ones included)."""
    try:
        reg = _registry(registry)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    _rows(reg.list(), as_json, f"models in {reg.root}")


@models_app.command("remove")
def remove(
    model: Annotated[str, typer.Argument(help="name or name@version")],
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """Forget a model version (its files go once no other version uses them)."""
    try:
        removed = _registry(registry).remove(model)
    except MeshOpsError as exc:
        raise _fail(exc) from None
    console.print(f"removed {removed.ref}")


@models_app.command("push")
def push(
    model: Annotated[str, typer.Argument(help="name or name@version in the local registry")],
    node: Annotated[str, typer.Option("--node", help="Alias or address of the node.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
    broker: Annotated[
        str, typer.Option("--broker", help="mqtt://HOST:PORT", envvar="MESHOPS_BROKER")
    ] = "mqtt://127.0.0.1:1883",
    key: Annotated[
        Path | None, typer.Option("--key", metavar="PATH", help="Client key (PEM).")
    ] = None,
    timeout: Annotated[float, typer.Option(min=1)] = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Send a model to a node's registry (chunked, verified by hash on the node)."""
    from meshops.sdk import Session

    try:
        reg = _registry(registry)
        manifest = reg.get(model)
        if manifest.builtin:
            raise ConfigError(f"{manifest.ref} is built into every node; nothing to push")
        files = reg.files(manifest)
        started = time.perf_counter()
        with err_console.status(f"pushing {manifest.ref} to {node}..."):
            with Session(broker, key=key, connect_timeout=5.0) as session:
                stored = session.push_model(
                    node,
                    manifest.name,
                    files,
                    version=manifest.version,
                    task=manifest.task,
                    options=manifest.options,
                    max_batch=manifest.max_batch,
                    max_wait_ms=manifest.max_wait_ms,
                    description=manifest.description,
                    timeout=timeout,
                )
        elapsed = time.perf_counter() - started
    except MeshOpsError as exc:
        raise _fail(exc) from None
    size = sum(p.stat().st_size for p in files.values())
    if as_json:
        typer.echo(json.dumps({**stored, "BYTES": size, "SECONDS": round(elapsed, 2)}))
    else:
        console.print(
            f"{stored['NAME']}@{stored['VERSION']} stored on {node} "
            f"({size / 1e6:.1f} MB in {elapsed:.1f} s)"
        )
