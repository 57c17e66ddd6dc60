"""btecctl dev: inspect and stop the embedded PostgreSQL and Redis under the data dir."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from btecctl.output import FAILED, JsonOpt, emit_json, err_console, out_console, settings_of
from server.platform.embedded import EmbeddedError, all_servers

app = typer.Typer(no_args_is_help=True, help="Embedded development servers under BTEC_DATA_DIR.")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show whether each embedded server runs, who owns it, and whether it is stale."""
    settings = settings_of(ctx)
    states = [s.state() for s in all_servers(settings.data_dir)]
    if as_json:
        emit_json({"data_dir": str(settings.data_dir), "servers": [s.as_dict() for s in states]})
        return
    table = Table(title=f"embedded servers in {settings.data_dir}", title_justify="left")
    for col in ("server", "state", "pid", "used by", "url"):
        table.add_column(col)
    for s in states:
        state = "[red]stale[/]" if s.stale else "[green]running[/]" if s.running else "stopped"
        users = ", ".join(str(u) for u in s.users)
        table.add_row(s.name, state, str(s.pid or ""), users, s.url)
    out_console.print(table)


@app.command("stop")
def stop(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option(help="Also stop servers a running btecctl still uses.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop embedded servers left behind by a killed btecctl (stale ones)."""
    settings = settings_of(ctx)
    stopped: list[str] = []
    in_use: list[str] = []
    errors: list[str] = []
    for server in all_servers(settings.data_dir):
        state = server.state()
        if not state.running:
            continue
        if state.users and not force:
            in_use.append(f"{state.name} (used by pid {', '.join(map(str, state.users))})")
            continue
        try:
            server.stop()
            stopped.append(state.name)
        except EmbeddedError as exc:
            errors.append(f"{state.name}: {exc}")
    if as_json:
        emit_json({"ok": not errors, "stopped": stopped, "in_use": in_use, "errors": errors})
    else:
        for name in stopped:
            err_console.print(f"[green]stopped[/] {name}")
        for item in in_use:
            err_console.print(f"[yellow]left running[/] {item}; use --force to stop it")
        for item in errors:
            err_console.print(f"[red]failed[/] {item}")
        if not (stopped or in_use or errors):
            err_console.print("no embedded server is running.")
    if errors:
        raise typer.Exit(FAILED)
