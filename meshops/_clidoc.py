"""The CLI reference, docs/cli.md, generated from the ``meshops`` typer app.

The page is what ``--help`` says for every command (usage, description, arguments, options),
as markdown, so it cannot drift from the code: a test fails while the file is stale.

    python -m meshops._clidoc --write docs/cli.md    # regenerate
    python -m meshops._clidoc --check docs/cli.md    # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import typer
import typer.main

__all__ = ["render"]

HEADER = """\
# CLI reference

<!-- Generated from the commands by `python -m meshops._clidoc --write docs/cli.md`;
     do not edit by hand (a test fails while this page differs from the code). -->

Every command prints a one-line `error: ...` on stderr and exits with 1 when it fails.
"""


def render(app: typer.Typer | None = None, name: str = "meshops") -> str:
    """The markdown reference of ``app`` (the ``meshops`` app by default)."""
    if app is None:
        from meshops.cli import app as meshops_app

        app = meshops_app
    command = typer.main.get_command(app)
    context = typer.Context(command, info_name=name)
    sections = [HEADER]
    _command(command, context, sections)
    return "\n".join(sections).rstrip() + "\n"


def _command(command: Any, context: typer.Context, sections: list[str]) -> None:
    path = context.command_path
    usage = " ".join([path, *command.collect_usage_pieces(context)])
    lines = [f"## `{path}`", ""]
    if command.help:
        lines += [_clean(command.help), ""]
    lines += ["```console", f"$ {usage}", "```", ""]
    arguments, options = [], []
    for param in command.get_params(context):
        record = param.get_help_record(context)
        if record is None or "--help" in record[0]:
            continue
        (arguments if param.param_type_name == "argument" else options).append(record)
    for title, records in (("Arguments", arguments), ("Options", options)):
        if records:
            lines += [f"| {title.lower()[:-1]} | description |", "|---|---|"]
            lines += [f"| `{_cell(names)}` | {_cell(text)} |" for names, text in records]
            lines.append("")
    subcommands = _subcommands(command, context)
    if subcommands:
        lines += ["| command | what it does |", "|---|---|"]
        for sub_name, sub in subcommands:
            summary = sub.get_short_help_str(limit=200)
            lines.append(f"| [`{sub_name}`](#{_anchor(f'{path} {sub_name}')}) | {_cell(summary)} |")
        lines.append("")
    sections.append("\n".join(lines))
    for sub_name, sub in subcommands:
        _command(sub, typer.Context(sub, info_name=sub_name, parent=context), sections)


def _subcommands(command: Any, context: typer.Context) -> list[tuple[str, Any]]:
    if not hasattr(command, "list_commands"):
        return []
    found = []
    for sub_name in command.list_commands(context):
        sub = command.get_command(context, sub_name)
        if sub is not None and not sub.hidden:
            found.append((sub_name, sub))
    return found


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(title: str) -> str:
    """GitHub's anchor for a ``## `title` `` heading."""
    return "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_").replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshops._clidoc", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="write the reference to FILE")
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    elif args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            print(f"{args.check} is stale: run python -m meshops._clidoc --write {args.check}")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
