"""Shared CLI plumbing: settings from the context, JSON or rich output, stable exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from server.config.settings import Settings
from server.domain.text import describe

# Exit codes every command uses; the README lists them.
OK = 0
FAILED = 1
USAGE = 2  # also typer's own code for bad arguments
UNREACHABLE = 3
CONFIG = 4

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout only.")
]

err_console = Console(stderr=True)
out_console = Console()


@contextmanager
def progress(verb: str, total: int | None, unit: str = "") -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr; yields the callback the work calls once per item done."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}" + (f"/{total}" if total else "") + f" {unit}"),
               TimeElapsedColumn()]  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(verb, total=total)
        yield lambda item: bar.update(task, advance=1, description=f"{verb} {item}")


class _Stderr:
    """Writes to whatever sys.stderr is at the time (CLI runs in tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = describe(record.exc_info[1], limit=300)
        return json.dumps(entry, ensure_ascii=False)


def cli_logging(as_json: bool, level: int = logging.WARNING) -> None:
    """Library warnings of an operator command, on stderr: JSON lines with --json, else plain
    lines. (The structured pipeline is the server's; commands start faster without it.)"""
    handler = logging.StreamHandler(_Stderr())
    plain = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    handler.setFormatter(_JsonLines() if as_json else plain)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings), "the root callback loads settings"
    return obj


def emit_json(data: Any) -> None:
    """One JSON document on stdout: indented on a terminal, one line (NDJSON) in a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, *, code: int = FAILED, as_json: bool = False, **extra: Any) -> NoReturn:
    """Report a failure on stderr (and as JSON on stdout with --json), then exit."""
    if as_json:
        emit_json({"ok": False, "error": message, **extra})
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def mask_url(url: str) -> str:
    """The URL with any password replaced, for printing targets."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
