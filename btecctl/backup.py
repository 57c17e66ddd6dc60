"""btecctl db backup / restore / verify / backups / prune / offsite-fetch: verified backups and
restore drills. btecctl/main.py adds COMMANDS to the `db` group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from btecctl.context import Terminated, database, library_warnings, session
from btecctl.output import (
    USAGE,
    JsonOpt,
    YesOpt,
    confirm,
    err_console,
    fail,
    mask_url,
    out_console,
    progress,
    report,
)
from server.backup import core as backups
from server.config.settings import Settings
from server.domain.text import describe

BackupArg = Annotated[
    str, typer.Argument(metavar="BACKUP", help="Backup name (in BTEC_BACKUP_DIR) or path.")
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The off-site copy's backup name.")]
LabelOpt = Annotated[
    str, typer.Option(metavar="LABEL", help="Suffix for the backup's name, e.g. before-release-12.")
]
PushOpt = Annotated[
    bool,
    typer.Option(
        "--offsite", help="Also copy it to the uploads' S3 bucket, under backups/<name>/."
    ),
]
OffsiteListOpt = Annotated[
    bool,
    typer.Option("--offsite", help="List the complete off-site copies in the S3 bucket instead."),
]
IntoOpt = Annotated[
    str | None,
    typer.Option(metavar="DB", help="New database to restore into. Default: <db>_restore_<time>."),
]
SwapOpt = Annotated[
    bool, typer.Option("--swap", help="After a good restore, rename it to the configured database.")
]
CleanOpt = Annotated[
    bool,
    typer.Option(
        "--clean", help="Restore into the configured database itself, in one transaction."
    ),
]
DailyOpt = Annotated[
    int, typer.Option(min=0, metavar="N", help="Newest days to keep one backup of.")
]
WeeklyOpt = Annotated[
    int, typer.Option(min=0, metavar="N", help="Newest ISO weeks to keep one of.")
]
MonthlyOpt = Annotated[int, typer.Option(min=0, metavar="N", help="Newest months to keep one of.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted.")]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def backup_command(
    ctx: typer.Context, label: LabelOpt = "", offsite: PushOpt = False, as_json: JsonOpt = False
) -> None:
    """Dump the database with pg_dump into a checksummed backup with a manifest.

    `pg_dump` (the newest that fits the server) into `BTEC_BACKUP_DIR`, written under a
    temporary name, fsynced and renamed; `manifest.json` records versions, times, size, each
    file's sha256, per-table row counts (same snapshot), migration head and release. `--offsite`
    then copies it to the uploads' S3 bucket under `backups/<name>/`, the manifest last (needs
    `BTEC_STORAGE_BACKEND=s3`; exit 2 otherwise)."""
    if label and not label.replace("-", "").isalnum():
        fail("--label may hold letters, digits and dashes only", code=USAGE, as_json=as_json)
    with session(ctx, as_json, postgres=True, prepare=library_warnings(as_json)) as s:
        if offsite and s.settings.storage_backend != "s3":
            fail("--offsite needs BTEC_STORAGE_BACKEND=s3 (and BTEC_S3_BUCKET)", code=USAGE,
                 as_json=as_json)  # fmt: skip
        s.reach_database()
        with progress("dumping", None, "tables") as tick:
            made = backups.backup(s.settings, tick, label=label)
        copied = _push(s.settings, made) if offsite else {}
    done = {"ok": True, **made.summary(), "duration_s": made.manifest["duration_s"], **copied}
    report(as_json, done, lambda: _print_backup(made, copied))


def _push(settings: Settings, made: backups.Backup) -> dict[str, Any]:
    from server.backup import offsite as remote

    with progress("copying off-site", len(made.manifest["files"]) + 1, "files") as tick:
        return asyncio.run(remote.push(settings, made, tick))


def _print_backup(made: backups.Backup, copied: dict[str, Any]) -> None:
    m = made.manifest
    err_console.print(f"[green]backup[/] {made.name}: {len(m['tables'])} tables, "
                      f"{sum(m['tables'].values())} rows, {_size(m['size_bytes'])} in "
                      f"{m['duration_s']} s")  # fmt: skip
    if copied:
        err_console.print(f"[green]copied off-site[/] to {copied['offsite']}")
    out_console.print(str(made.path))


def offsite_fetch_command(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Bring an off-site copy back into BTEC_BACKUP_DIR, checked against its manifest (then `db
    verify` or `db restore` it).

    Bring an off-site copy back into `BTEC_BACKUP_DIR`: downloaded into a partial directory,
    every file checked against the manifest (size and sha256), then renamed into place; a
    damaged or incomplete copy is refused and leaves nothing. Then `db verify` or `db restore`
    it."""
    from server.backup import offsite as remote

    with session(ctx, as_json) as s, progress("fetching", None, "files") as tick:
        found = asyncio.run(remote.fetch(s.settings, name, tick))
    report(as_json, {"ok": True, **found.summary()}, lambda: _print_fetched(found))


def _print_fetched(found: backups.Backup) -> None:
    err_console.print(f"[green]fetched[/] {found.name}; every file matches its manifest")
    out_console.print(str(found.path))


def list_command(
    ctx: typer.Context, offsite: OffsiteListOpt = False, as_json: JsonOpt = False
) -> None:
    """List backups, newest first, with their last restore drill.

    List backups, newest first, with their last restore drill, and leftovers of interrupted
    backups and restores (a restore's database marked in progress that no btecctl is filling);
    `--offsite` lists the complete off-site copies instead."""
    with session(ctx, as_json, postgres=not offsite) as s:
        if offsite:
            _list_offsite(s.settings, as_json)
            return
        found, partial = backups.list_backups(s.settings)
        databases, unchecked = _leftover_databases(s.settings)
    listed = {"backup_dir": str(s.settings.backups_path), "backups": [b.summary() for b in found],
              "incomplete": [str(p) for p in partial], "leftover_databases": databases,
              "databases_unchecked": unchecked}  # fmt: skip
    report(as_json, listed, lambda: _print_backups(s.settings.backups_path, found, partial,
                                                   databases, unchecked))  # fmt: skip


def _leftover_databases(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """Databases interrupted restores left; or, when the server cannot say, why not (listing
    backups does not need the database)."""
    import psycopg

    if settings.database_url is None:
        return [], "leftover restore databases not checked: no database configured"
    try:
        return backups.leftover_databases(settings.database_url.get_secret_value()), None
    except psycopg.Error as exc:
        return [], f"leftover restore databases not checked: {describe(exc)}"


def _list_offsite(settings: Settings, as_json: bool) -> None:
    from server.backup import offsite as remote

    names = asyncio.run(remote.copies(settings))
    report(as_json, {"bucket": settings.s3_bucket, "offsite": names}, lambda: _print_names(names))


def _print_names(names: list[str]) -> None:
    for name in names:
        out_console.print(name)


def _print_backups(
    where: Path, found: list[backups.Backup], partial: list[Path],
    databases: list[dict[str, Any]], unchecked: str | None,
) -> None:  # fmt: skip
    table = Table(title=f"backups in {where}", title_justify="left")
    for col in ("name", "created (UTC)", "size", "rows", "migration head", "last drill"):
        table.add_column(col)
    for b in found:
        info = b.summary()
        drill = info["last_drill"]
        drilled = "never" if drill is None else ("ok " if drill["ok"] else "FAILED ") + drill["at"]
        table.add_row(b.name, info["created"], _size(info["size_bytes"]), str(info["rows"]),
                      str(info["migration_head"]), drilled)  # fmt: skip
    out_console.print(table)
    for p in partial:
        err_console.print(
            f"[yellow]incomplete[/] {p} (an interrupted backup; `db prune` removes it)"
        )
    for d in databases:
        err_console.print(f"[yellow]leftover database[/] {d['database']} ({d['mark']}; an "
                          "interrupted restore; `db prune` drops it)", highlight=False)  # fmt: skip
    if unchecked:
        err_console.print(f"[yellow]{unchecked}[/]", highlight=False)


def verify_command(ctx: typer.Context, name: BackupArg, as_json: JsonOpt = False) -> None:
    """Restore drill: restore into a scratch database, compare with the manifest, drop it.

    Restore drill: checksums, restore into a scratch database, compare with the manifest, report
    and record the drill time (`drills.json`), drop the scratch database."""
    with database(ctx, as_json) as s:
        found = backups.resolve(s.settings, name)
        with progress("restoring", len(found.manifest["tables"]), "tables") as tick:
            drill = backups.verify(s.settings, found, tick)
    report(as_json, {"ok": True, "backup": found.name, **drill}, lambda: _print_drill(found, drill))


def _print_drill(found: backups.Backup, drill: dict[str, Any]) -> None:
    err_console.print(
        f"[green]drill passed[/]: {found.name} restored {drill['rows']} rows in "
        f"{drill['tables']} tables in {drill['seconds']} s; the scratch database is dropped."
    )


def restore_command(
    ctx: typer.Context, name: BackupArg, into: IntoOpt = None, swap: SwapOpt = False,
    clean: CleanOpt = False, yes: YesOpt = False, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Restore a backup: checksums first, then into a new database (or --clean), then counts.

    Verify every checksum first (a damaged backup is refused before anything is touched), show
    the target and what it replaces, ask unless `--yes`, restore with `--exit-on-error` into a
    new database (default `<db>_restore_<time>`; `--swap` then renames it into place and keeps
    the old one as `<db>_before_<time>`) or, with `--clean`, into the configured database in one
    transaction; then compare row counts with the manifest."""
    if clean and (swap or into):
        fail("--clean restores in place: it takes neither --into nor --swap", code=USAGE,
             as_json=as_json)  # fmt: skip
    with database(ctx, as_json) as s:
        found = backups.resolve(s.settings, name)
        backups.verify_files(found)
        plan = backups.plan_restore(s.settings, found, into=into, clean=clean, swap=swap)
        if not yes:
            confirm("Proceed?", as_json=as_json, show=lambda: _print_plan(plan))
        with progress("restoring", len(found.manifest["tables"]), "tables") as tick:
            try:
                result = backups.restore(s.settings, plan, tick)
            except Terminated:
                undone = ("its transaction was rolled back" if plan.clean else
                          f"database {plan.into} was dropped")  # fmt: skip
                raise Terminated(f"stopped by SIGTERM before the restore finished: {undone}; "
                                 f"database {plan.target} is as it was") from None  # fmt: skip
    report(as_json, {"ok": True, "backup": found.name, **result},
           lambda: _print_restored(found.name, result, moved=clean or swap))  # fmt: skip


def _print_plan(plan: backups.RestorePlan) -> None:
    """What a restore would replace, before the operator is asked."""
    m, target = plan.backup.manifest, mask_url(plan.server_url)
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


def _print_restored(name: str, result: dict[str, Any], *, moved: bool) -> None:
    err_console.print(f"[green]restored[/] {name} into {result['restored_into']}; "
                      "row counts match the manifest.")  # fmt: skip
    if result.get("previous"):
        err_console.print(f"the previous database is kept as {result['previous']}")
    elif not moved:
        err_console.print("point BTEC_DATABASE_URL at it, or run again with --swap to rename it.")


def prune_command(
    ctx: typer.Context, daily: DailyOpt = 7, weekly: WeeklyOpt = 4, monthly: MonthlyOpt = 6,
    dry_run: DryRunOpt = False, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Delete backups outside the retention policy (and leftovers of interrupted ones).

    Keep the newest backup of each of the newest N days (7), ISO weeks (4) and months (6),
    delete the rest and any interrupted backup's leftovers, and drop the databases interrupted
    restores left (marked in progress, with no btecctl filling them: `db backups` lists them)."""
    with session(ctx, as_json, postgres=True) as s:
        found, partial = backups.list_backups(s.settings)
        kept, pruned = backups.retention(found, daily=daily, weekly=weekly, monthly=monthly)
        databases, unchecked = _leftover_databases(s.settings)
        if not dry_run:
            _delete(pruned, partial)
            for d in databases:
                backups.drop_database(s.settings, d["database"])
    leftovers = [d["database"] for d in databases]
    report(as_json, {"ok": True, "dry_run": dry_run, "kept": [b.name for b in kept],
                     "pruned": [b.name for b in pruned],
                     "incomplete_removed": [str(p) for p in partial],
                     "databases_dropped": leftovers, "databases_unchecked": unchecked},
           lambda: _print_pruned(len(kept), pruned, [*(f"incomplete {p.name}" for p in partial),
                                 *(f"leftover database {n}" for n in leftovers)],
                                 dry_run=dry_run))  # fmt: skip


def _delete(pruned: list[backups.Backup], partial: list[Path]) -> None:
    for b in pruned:
        backups.delete(b)
    for p in partial:
        backups.remove_partial(p)


def _print_pruned(
    kept: int, pruned: list[backups.Backup], leftovers: list[str], *, dry_run: bool
) -> None:
    verb = "would delete" if dry_run else "deleted"
    for line in [b.name for b in pruned] + leftovers:
        err_console.print(f"[yellow]{verb}[/] {line}")
    err_console.print(f"{kept} kept, {len(pruned)} {verb}.")


# The commands btecctl/main.py adds to the `db` group, by name, in the order help lists them.
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("backup", backup_command),
    ("offsite-fetch", offsite_fetch_command),
    ("backups", list_command),
    ("verify", verify_command),
    ("restore", restore_command),
    ("prune", prune_command),
)
