"""btecctl db backup / restore / verify / backups / prune: verified backups and restore drills."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from btecctl.db import app, database
from btecctl.output import (
    FAILED,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    mask_url,
    out_console,
    progress,
    settings_of,
)
from server.backup import core as backups
from server.config.settings import Settings

T = TypeVar("T")
BackupArg = Annotated[str, typer.Argument(help="Backup name (in BTEC_BACKUP_DIR) or path.")]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@app.command("backup")
def backup_command(
    ctx: typer.Context,
    label: Annotated[
        str, typer.Option(help="Suffix for the backup's name, e.g. before-release-12.")
    ] = "",
    offsite: Annotated[
        bool,
        typer.Option(help="Also copy it to the uploads' S3 bucket, under backups/<name>/."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Dump the database with pg_dump into a checksummed backup with a manifest."""
    if label and not label.replace("-", "").isalnum():
        fail("--label may hold letters, digits and dashes only", code=USAGE, as_json=as_json)
    if offsite and settings_of(ctx).storage_backend != "s3":
        fail("--offsite needs BTEC_STORAGE_BACKEND=s3 (and BTEC_S3_BUCKET)", code=USAGE,
             as_json=as_json)  # fmt: skip
    with (
        database(settings_of(ctx), as_json) as settings,
        progress("dumping", None, "tables") as tick,
    ):
        made = _guard(lambda: backups.backup(settings, tick, label=label), as_json)
    m = made.manifest
    copied: dict[str, object] = {}
    if offsite:
        from server.backup import offsite as remote

        with progress("copying off-site", len(m["files"]) + 1, "files") as tick:
            copied = _guard(lambda: asyncio.run(remote.push(settings, made, tick)), as_json)
    if as_json:
        emit_json({"ok": True, **made.summary(), "duration_s": m["duration_s"], **copied})
        return
    err_console.print(
        f"[green]backup[/] {made.name}: {len(m['tables'])} tables, "
        f"{sum(m['tables'].values())} rows, {_size(m['size_bytes'])} in {m['duration_s']} s"
    )
    if copied:
        err_console.print(f"[green]copied off-site[/] to {copied['offsite']}")
    out_console.print(str(made.path))


@app.command("offsite-fetch")
def offsite_fetch_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The off-site copy's backup name.")],
    as_json: JsonOpt = False,
) -> None:
    """Bring an off-site copy back into BTEC_BACKUP_DIR, checked against its manifest (then
    `db verify` or `db restore` it)."""
    from server.backup import offsite as remote

    settings = settings_of(ctx)
    with progress("fetching", None, "files") as tick:
        found = _guard(lambda: asyncio.run(remote.fetch(settings, name, tick)), as_json)
    if as_json:
        emit_json({"ok": True, **found.summary()})
        return
    err_console.print(f"[green]fetched[/] {found.name}; every file matches its manifest")
    out_console.print(str(found.path))


def _guard(work: Callable[[], T], as_json: bool) -> T:
    try:
        return work()
    except backups.BackupCorrupt as exc:
        fail(f"refused, the backup is damaged: {exc}. Nothing was touched.", as_json=as_json)
    except backups.BackupError as exc:
        fail(str(exc), as_json=as_json)


@app.command("backups")
def list_command(
    ctx: typer.Context,
    offsite: Annotated[
        bool, typer.Option(help="List the complete off-site copies in the S3 bucket instead.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List backups, newest first, with their last restore drill."""
    settings = settings_of(ctx)
    if offsite:
        from server.backup import offsite as remote

        names = _guard(lambda: asyncio.run(remote.copies(settings)), as_json)
        if as_json:
            emit_json({"bucket": settings.s3_bucket, "offsite": names})
        else:
            for name in names:
                out_console.print(name)
        return
    found, partial = backups.list_backups(settings)
    if as_json:
        emit_json(
            {
                "backup_dir": str(settings.backups_path),
                "backups": [b.summary() for b in found],
                "incomplete": [str(p) for p in partial],
            }
        )
        return
    table = Table(title=f"backups in {settings.backups_path}", title_justify="left")
    for col in ("name", "created (UTC)", "size", "rows", "migration head", "last drill"):
        table.add_column(col)
    for b in found:
        s = b.summary()
        drill = s["last_drill"]
        drilled = "never" if drill is None else ("ok " if drill["ok"] else "FAILED ") + drill["at"]
        table.add_row(b.name, s["created"], _size(s["size_bytes"]), str(s["rows"]),
                      str(s["migration_head"]), drilled)  # fmt: skip
    out_console.print(table)
    for p in partial:
        err_console.print(
            f"[yellow]incomplete[/] {p} (an interrupted backup; `db prune` removes it)"
        )


@app.command("verify")
def verify_command(ctx: typer.Context, name: BackupArg, as_json: JsonOpt = False) -> None:
    """Restore drill: restore into a scratch database, compare with the manifest, drop it."""
    with database(settings_of(ctx), as_json) as settings:
        found = _guard(lambda: backups.resolve(settings, name), as_json)
        total = len(found.manifest["tables"])
        with progress("restoring", total, "tables") as tick:
            drill = _guard(lambda: backups.verify(settings, found, tick), as_json)
    if as_json:
        emit_json({"ok": True, "backup": found.name, **drill})
        return
    err_console.print(
        f"[green]drill passed[/]: {found.name} restored {drill['rows']} rows in "
        f"{drill['tables']} tables in {drill['seconds']} s; the scratch database is dropped."
    )


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    name: BackupArg,
    into: Annotated[
        str | None,
        typer.Option(help="New database to restore into [default: <db>_restore_<time>]."),
    ] = None,
    swap: Annotated[
        bool, typer.Option(help="After a good restore, rename it to the configured database.")
    ] = False,
    clean: Annotated[
        bool, typer.Option(help="Restore into the configured database itself, in one transaction.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup: checksums first, then into a new database (or --clean), then counts."""
    if clean and (swap or into):
        fail("--clean restores in place: it takes neither --into nor --swap", code=USAGE,
             as_json=as_json)  # fmt: skip
    with database(settings_of(ctx), as_json) as settings:
        found = _guard(lambda: backups.resolve(settings, name), as_json)
        _guard(lambda: backups.verify_files(found), as_json)
        plan = _guard(
            lambda: backups.plan_restore(settings, found, into=into, clean=clean, swap=swap),
            as_json,
        )
        _confirm(settings, plan, yes, as_json)
        with progress("restoring", len(found.manifest["tables"]), "tables") as tick:
            result = _guard(lambda: backups.restore(settings, plan, tick), as_json)
    if as_json:
        emit_json({"ok": True, "backup": found.name, **result})
        return
    err_console.print(f"[green]restored[/] {found.name} into {result['restored_into']}; "
                      "row counts match the manifest.")  # fmt: skip
    if result.get("previous"):
        err_console.print(f"the previous database is kept as {result['previous']}")
    elif not clean and not swap:
        err_console.print("point BTEC_DATABASE_URL at it, or run again with --swap to rename it.")


def _confirm(settings: Settings, plan: backups.RestorePlan, yes: bool, as_json: bool) -> None:
    if yes:
        return
    if as_json:
        fail("confirmation needed: pass --yes", code=USAGE, as_json=True)
    target = mask_url(plan.server_url)
    m = plan.backup.manifest
    err_console.print(f"Restore [bold]{plan.backup.name}[/] ({m['finished_at']}, "
                      f"{sum(m['tables'].values())} rows) on {target}")  # fmt: skip
    if plan.clean:
        err_console.print(f"[red]replaces every object in database {plan.target}[/], now holding:")
    else:
        err_console.print(f"into new database {plan.into}" + (
            f", then swaps it with {plan.target}, now holding:" if plan.swap else "."))  # fmt: skip
    if plan.clean or plan.swap:
        for table, rows in sorted(plan.target_tables.items()):
            err_console.print(f"  {table}: {rows} rows")
    if not typer.confirm("Proceed?", default=False, err=True):
        raise typer.Exit(FAILED)


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    daily: Annotated[int, typer.Option(min=0, help="Newest days to keep one backup of.")] = 7,
    weekly: Annotated[int, typer.Option(min=0, help="Newest ISO weeks to keep one of.")] = 4,
    monthly: Annotated[int, typer.Option(min=0, help="Newest months to keep one of.")] = 6,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be deleted.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete backups outside the retention policy (and leftovers of interrupted ones)."""
    settings = settings_of(ctx)
    found, partial = backups.list_backups(settings)
    kept, pruned = backups.retention(found, daily=daily, weekly=weekly, monthly=monthly)
    if not dry_run:
        for b in pruned:
            backups.delete(b)
        for p in partial:
            backups.remove_partial(p)
    if as_json:
        emit_json({"ok": True, "dry_run": dry_run, "kept": [b.name for b in kept],
                   "pruned": [b.name for b in pruned],
                   "incomplete_removed": [str(p) for p in partial]})  # fmt: skip
        return
    verb = "would delete" if dry_run else "deleted"
    for b in pruned:
        err_console.print(f"[yellow]{verb}[/] {b.name}")
    for p in partial:
        err_console.print(f"[yellow]{verb}[/] incomplete {p.name}")
    err_console.print(f"{len(kept)} kept, {len(pruned)} {verb}.")
