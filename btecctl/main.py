"""btecctl's root: loads settings once and adds one sub-app per noun."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import Annotated

import typer

import btecctl.backup  # noqa: F401 - registers db backup, restore, verify, backups, prune
from btecctl import (
    assessment,
    cache,
    db,
    dev,
    files,
    health,
    mail,
    sentry,
    serve,
    tasks,
    units,
    users,
    worker,
)
from btecctl.output import CONFIG, FAILED, err_console
from server import __version__
from server.config.settings import SettingsError, load_settings

app = typer.Typer(
    name="btecctl",
    no_args_is_help=True,
    help="Run and operate btec: the API server, migrations, health and embedded servers.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"btecctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Settings come from BTEC_* variables and an optional .env file."""
    try:
        ctx.obj = load_settings()
    except SettingsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(CONFIG) from None


app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("health")(health.health)
app.add_typer(db.app, name="db")
app.add_typer(dev.app, name="dev")
app.add_typer(tasks.app, name="tasks")
app.add_typer(mail.app, name="mail")
app.add_typer(cache.app, name="cache")
app.add_typer(units.app, name="units")
app.add_typer(files.app, name="files")
app.add_typer(assessment.app, name="assessment")
app.add_typer(users.app, name="users")
app.add_typer(sentry.app, name="sentry")


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
