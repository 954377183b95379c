"""What every ``meshops`` command module shares: the consoles and the one-line error.

Stdout holds results; spinners and errors go to stderr. An error is one line, ``error: ...``,
printed as it is (its text is escaped, so brackets such as ``meshops[models]`` survive), and
the exit code is 1 (130 for Ctrl-C).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from meshops.errors import MeshOpsError

__all__ = ["console", "err_console", "fail", "one_line_errors"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one line per error, never wrapped


def fail(error: BaseException) -> typer.Exit:
    """Print ``error: <error>`` on stderr; the ``typer.Exit`` to raise."""
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    return typer.Exit(code=1)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a ``MeshOpsError`` (or Ctrl-C) inside the block into a one-line error and exit."""
    try:
        yield
    except MeshOpsError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        raise typer.Exit(code=130) from None
