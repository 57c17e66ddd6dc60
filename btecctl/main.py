"""btecctl's root: every command, registered from the explicit lists below."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from btecctl import (
    assessment,
    backup,
    cache,
    db,
    deploy,
    dev,
    files,
    health,
    jobs,
    mail,
    perf,
    security,
    sentry,
    serve,
    units,
    users,
    worker,
)
from btecctl.output import FAILED
from server import __version__

app = typer.Typer(
    name="btecctl",
    no_args_is_help=True,
    help="Run and operate btec: the API server, migrations, health and embedded servers.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In the order `btecctl --help` lists them.
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("serve", serve.serve),
    ("worker", worker.worker),
    ("health", health.health),
)
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("db", db.app),
    ("dev", dev.app),
    ("deploy", deploy.app),
    ("jobs", jobs.app),
    ("mail", mail.app),
    ("cache", cache.app),
    ("units", units.app),
    ("files", files.app),
    ("assessment", assessment.app),
    ("users", users.app),
    ("perf", perf.app),
    ("security", security.app),
    ("sentry", sentry.app),
)
# Backups are the database's: `btecctl db backup`, `db restore`, ...
DB_COMMANDS = backup.COMMANDS
# Old names that still work, out of the help: what users already type.
ALIASES: tuple[tuple[str, typer.Typer], ...] = (("tasks", jobs.app),)

for name, command in COMMANDS:
    app.command(name)(command)
for name, command in DB_COMMANDS:
    db.app.command(name)(command)
for name, group in GROUPS:
    app.add_typer(group, name=name)
for name, group in ALIASES:
    app.add_typer(group, name=name, hidden=True)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"btecctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Settings come from BTEC_* variables and an optional .env file; each command loads them
    in its session (btecctl/context.py), so a bad one is reported like any failure."""


def run() -> None:
    """The `btecctl` entry point. Once the command has returned (its servers stopped, its
    files synced), exit-time hooks run and the process ends without the interpreter's module
    teardown, which would add about 70 ms to every command."""
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = FAILED
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe (`btecctl ... | head`)
            stream.flush()
    atexit._run_exitfuncs()  # logging.shutdown and any library's flush hooks
    os._exit(code or 0)
