"""What a person sees: the exit codes, JSON or rich output on the right stream, progress,
confirmations, and how help looks."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from server.domain.text import describe

# Exit codes every command uses; the README lists them.
OK = 0
FAILED = 1
USAGE = 2  # also typer's own code for bad arguments
UNREACHABLE = 3
CONFIG = 4
INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_CODES = {
    OK: "success; for `health`, `pass` or `warn`; for `perf run`, every threshold met",
    FAILED: "a failed check or a refused action; for `health`, `fail`; for `perf run`, a "
    "threshold failed (each named; k6's own exit code 99 is one) or k6 failed",
    USAGE: "bad arguments or input, or a needed confirmation not given; for `health --strict`, "
    "`warn`; for `perf run`, a production server without `--i-know-this-is-production`",
    UNREACHABLE: "the server, database or Redis could not be reached",
    CONFIG: "missing or invalid configuration (the message names the variable); for `perf "
    "run`, k6 not installed",
    INTERRUPTED: "interrupted by Ctrl-C or SIGTERM; `perf run` still writes what it measured, "
    "marked incomplete",
}

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout only.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

err_console = Console(stderr=True)
out_console = Console()


@contextmanager
def progress(
    verb: str, total: int | None = None, unit: str = ""
) -> Iterator[Callable[[str], None]]:
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


def noun(help: str, **options: Any) -> typer.Typer:
    """A command group. Help is click's plain layout: flags show as flags, values by their
    metavar (`--steps N`), and `[default: ...]` in a help text stays text (typer's rich
    layout shows `<bool>` beside every flag and takes brackets for markup)."""
    options.setdefault("no_args_is_help", True)
    return typer.Typer(help=help, rich_markup_mode=None, **options)


def emit_json(data: Any) -> None:
    """One JSON document on stdout: indented on a terminal, one line (NDJSON) in a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def report(as_json: bool, data: Any, show: Callable[[], object]) -> None:
    """What a command found: `data` as JSON with --json, else as `show()` prints it."""
    if as_json:
        emit_json(data)
    else:
        show()


def fail(message: str, *, code: int = FAILED, as_json: bool = False, **extra: Any) -> NoReturn:
    """Report a failure on stderr (and as JSON on stdout with --json), then exit."""
    if as_json:
        emit_json({"ok": False, "error": message, **extra})
    # The message as text: what an exception says may hold brackets rich would take for markup.
    err_console.print(Text.assemble(("error:", "bold red"), f" {message}"), soft_wrap=True)
    raise typer.Exit(code)


def confirm(question: str, *, as_json: bool, show: Callable[[], None] | None = None) -> None:
    """Go on only if the operator says yes, once `show` has printed what is at stake. With
    --json nobody is there to ask, and a "no" (or no answer) is bad usage as much as a
    missing --yes: both exit 2."""
    if as_json:
        fail("confirmation needed: pass --yes", code=USAGE, as_json=True)
    if show is not None:
        show()
    try:
        agreed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        agreed = False
    if not agreed:
        fail("not confirmed: nothing was changed (pass --yes to skip the question)", code=USAGE)


def mask_url(url: str) -> str:
    """The URL with any password replaced, for printing targets."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
