"""btecctl dev: inspect and stop the embedded PostgreSQL and Redis under the data dir."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from btecctl.context import session
from btecctl.output import CONFIG, FAILED, JsonOpt, err_console, fail, noun, out_console, report
from server.platform.embedded import EmbeddedError, EmbeddedServer, ServerState, all_servers

app = noun("Embedded development servers under BTEC_DATA_DIR.")


ForceOpt = Annotated[bool, typer.Option(help="Also stop servers a running btecctl still uses.")]


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show whether each embedded server runs, who owns it, and whether it is stale."""
    with session(ctx, as_json) as s:
        where = s.settings.data_dir
        states = [server.state() for server in all_servers(where)]
    found = {"data_dir": str(where), "servers": [st.as_dict() for st in states]}
    report(as_json, found, lambda: _print_states(states, where))


def _print_states(states: list[ServerState], where: Path) -> None:
    table = Table("server", "state", "pid", "used by", "url",
                  title=f"embedded servers in {where}", title_justify="left")  # fmt: skip
    for st in states:
        state = "[red]stale[/]" if st.stale else "[green]running[/]" if st.running else "stopped"
        table.add_row(st.name, state, str(st.pid or ""), ", ".join(map(str, st.users)), st.url)
    out_console.print(table)


@app.command("stop")
def stop(ctx: typer.Context, force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Stop embedded servers left behind by a killed btecctl (stale ones)."""
    with session(ctx, as_json) as s:
        outcome = _stop_all(all_servers(s.settings.data_dir), force)
    report(as_json, {"ok": not outcome["errors"], **outcome}, lambda: _print_stopped(**outcome))
    if outcome["errors"]:
        raise typer.Exit(FAILED)


def _print_stopped(stopped: list[str], in_use: list[str], errors: list[str]) -> None:
    for name in stopped:
        err_console.print(f"[green]stopped[/] {name}")
    for item in in_use:
        err_console.print(f"[yellow]left running[/] {item}; use --force to stop it")
    for item in errors:
        err_console.print(f"[red]failed[/] {item}")
    if not (stopped or in_use or errors):
        err_console.print("no embedded server is running.")


def _stop_all(servers: list[EmbeddedServer], force: bool) -> dict[str, list[str]]:
    """Stop each running server nobody uses (any, with `force`): what stopped, what was left
    in use, and what failed."""
    outcome: dict[str, list[str]] = {"stopped": [], "in_use": [], "errors": []}
    for server in servers:
        state = server.state()
        if state.running and state.users and not force:
            users = ", ".join(map(str, state.users))
            outcome["in_use"].append(f"{state.name} (used by pid {users})")
        elif state.running:
            try:
                server.stop()
                outcome["stopped"].append(state.name)
            except EmbeddedError as exc:
                outcome["errors"].append(f"{state.name}: {exc}")
    return outcome


CheckOpt = Annotated[
    bool, typer.Option("--check", help="Change nothing; exit 1 if a committed page is stale.")
]


OutOpt = Annotated[
    Path | None,
    typer.Option("--out", metavar="FILE", help="Write the document here. Default: stdout."),
]


@app.command("openapi")
def openapi(ctx: typer.Context, out: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Write the OpenAPI 3 document the API serves at /api/docs/openapi.json, without a
    running server: to stdout, or to FILE with --out (--json then reports what was written).
    The committed copy is docs/openapi.json; clients are generated from either."""
    from btecctl import reference
    from server.app.factory import openapi_document
    from server.config.settings import Settings

    with session(ctx, as_json):
        spec = openapi_document(Settings.model_construct())
        text = reference.openapi_text(spec)
        if out is None:
            sys.stdout.write(text)
            return
        out.write_text(text)
    operations = sum(len(item) for item in spec["paths"].values())
    report(as_json, {"ok": True, "written": str(out), "operations": operations},
           lambda: err_console.print(f"written: {out} ({operations} operations)"))  # fmt: skip


PostmanCheckOpt = Annotated[
    bool, typer.Option("--check", help="Change nothing; exit 1 if a committed file is stale.")
]


@app.command("postman")
def postman(ctx: typer.Context, check: PostmanCheckOpt = False, as_json: JsonOpt = False) -> None:
    """Write the Postman collection and environment in docs/postman/ from the OpenAPI
    document, with npm's openapi-to-postmanv2 (`npm ci` installs it): one run, in order, that
    signs in, keeps the token and tests each answer's status and schema (newman runs it)."""
    from btecctl import postman as collection
    from btecctl import reference
    from server.app.factory import openapi_document
    from server.config.settings import Settings

    with session(ctx, as_json):
        try:
            made = collection.files(openapi_document(Settings.model_construct()))
        except collection.PostmanError as exc:
            code = CONFIG if isinstance(exc, collection.ToolMissing) else FAILED
            fail(str(exc), code=code, as_json=as_json)
        where = collection.OUT_DIR
        changed = reference.stale(made, where) if check else reference.write(made, where)
    verb = "stale" if check else "written"
    report(as_json, {"ok": not (check and changed), verb: changed, "directory": str(where)},
           lambda: err_console.print(f"{verb}: {', '.join(changed) or 'none'}"))  # fmt: skip
    if check and changed:
        raise typer.Exit(FAILED)


@app.command("docs")
def docs(ctx: typer.Context, check: CheckOpt = False, as_json: JsonOpt = False) -> None:
    """Write the generated references in docs/: the CLI (cli.md), the configuration
    (configuration.md), the HTTP API (api.md) and its OpenAPI document (openapi.json), from
    the code itself; and deploy/btec.env, the production environment file."""
    from btecctl import reference
    from server.app.factory import openapi_document
    from server.config.settings import Settings

    with session(ctx, as_json):
        pages = reference.pages(
            ctx.find_root().command, openapi_document(Settings.model_construct())
        )
        apply = reference.stale if check else reference.write
        changed = apply(pages)
        changed += [f"deploy/{n}" for n in apply(reference.deploy_pages(), reference.DEPLOY)]
    verb = "stale" if check else "written"
    report(as_json, {"ok": not (check and changed), verb: changed},
           lambda: err_console.print(f"{verb}: {', '.join(changed) or 'none'}"))  # fmt: skip
    if check and changed:
        raise typer.Exit(FAILED)
