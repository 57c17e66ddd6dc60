"""btecctl db: migrate, roll back and inspect the schema; read a running server's pool. (The
backup commands join this group in btecctl/main.py, from btecctl/backup.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from btecctl.context import database, given, session
from btecctl.health import base_url, default_url, scrape
from btecctl.output import (
    FAILED,
    USAGE,
    JsonOpt,
    YesOpt,
    confirm,
    err_console,
    fail,
    mask_url,
    noun,
    out_console,
    progress,
    report,
)

if TYPE_CHECKING:
    from server.schema.lint import Finding
    from server.schema.migrate_test import Report as MigrateTestReport
    from server.schema.migrations import MigrationState

app = noun("Schema migrations, backups and restores, and the database pool.")


StepsOpt = Annotated[int, typer.Option(min=1, metavar="N", help="Roll back this many migrations.")]
ToOpt = Annotated[
    str | None, typer.Option(metavar="ID", help="Roll back every migration applied after this id.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show what would be rolled back.")]
UrlOpt = Annotated[str | None, typer.Option(metavar="URL", help="Server base URL.")]
NewestOpt = Annotated[
    int, typer.Option(min=0, metavar="N", help="Roll back and re-apply this many with seeded data.")
]
RowsOpt = Annotated[int, typer.Option(min=1, max=10000, metavar="N", help="Rows seeded per table.")]


@app.command("migrate")
def migrate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Apply every pending migration, under the migration lock."""
    from server.schema import migrations

    with database(ctx, as_json) as s, err_console.status("applying migrations…"):
        applied = migrations.migrate(s.settings)
    report(as_json, {"ok": True, "applied": applied}, lambda: _print_applied(applied))


def _print_applied(ids: list[str]) -> None:
    for mid in ids:
        err_console.print(f"[green]applied[/] {mid}")
    err_console.print(f"{len(ids)} migration(s) applied; the schema is at head.")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List migrations and whether each is applied."""
    from server.schema import migrations

    with database(ctx, as_json) as s:
        states, target = migrations.status(s.settings), mask_url(s.database_url)
    pending = [m.id for m in states if not m.applied]
    found = {"database": target, "migrations": [m.as_dict() for m in states], "pending": pending}
    report(as_json, found, lambda: _print_status(states, target, pending))


def _print_status(states: list[MigrationState], target: str, pending: list[str]) -> None:
    table = Table("id", "state", "applied at (UTC)", title=f"migrations on {target}",
                  title_justify="left")  # fmt: skip
    for m in states:
        when = m.applied_at.isoformat(timespec="seconds") if m.applied_at else ""
        table.add_row(m.id, "[green]applied[/]" if m.applied else "[yellow]pending[/]", when)
    out_console.print(table)
    err_console.print(f"{len(pending)} pending.")


@app.command("rollback")
def rollback(
    ctx: typer.Context, steps: StepsOpt = 1, to: ToOpt = None, yes: YesOpt = False,
    dry_run: DryRunOpt = False, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Roll back the newest migrations (asks first unless --yes).

    --to ID] [--yes] [--dry-run] [--json]` | Roll back the newest N migrations (default 1), or
    every one applied after `ID`. Shows the target (password masked) and asks first unless
    `--yes`; with `--json` and no `--yes` it refuses (exit 2)."""
    from server.schema import migrations

    if to is not None and given(ctx, "steps"):
        fail("use --steps or --to, not both", code=USAGE, as_json=as_json)
    with database(ctx, as_json) as s:
        plan, target = migrations.plan_rollback(s.settings, steps, to), mask_url(s.database_url)
        if plan and not dry_run:
            shown = f"Roll back on [bold]{target}[/]: " + ", ".join(plan)
            if not yes:
                confirm("Proceed?", as_json=as_json, show=lambda: err_console.print(shown))
            with err_console.status("rolling back…"):
                plan = migrations.rollback(s.settings, steps, to)
    only_shown = dry_run or not plan
    done = {"ok": True, "database": target, "dry_run": only_shown, "rolled_back": plan}
    report(as_json, done, lambda: _print_rollback(plan, dry_run=only_shown))


def _print_rollback(ids: list[str], *, dry_run: bool) -> None:
    verb = "would roll back" if dry_run else "rolled back"
    for mid in ids:
        err_console.print(f"[yellow]{verb}[/] {mid}")
    if not ids:
        err_console.print("nothing to roll back.")


@app.command("pool-stats")
def pool_stats(ctx: typer.Context, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Print the database pool metrics of a running server (from its /metrics)."""
    with session(ctx, as_json) as s:
        base = base_url(url or default_url(s.settings), as_json)
        families = scrape(base, s.secret("metrics_token"))
    stats = {sample.name: sample.value for family in families
             if family.name.startswith("btec_db_pool") for sample in family.samples
             if not sample.labels or sample.name.endswith(("_sum", "_count"))}  # fmt: skip
    report(as_json, stats, lambda: _print_pool(stats, base))


def _print_pool(stats: dict[str, float], base: str) -> None:
    table = Table(title=f"database pool of {base}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(stats.items()):
        table.add_row(name, f"{value:g}")
    out_console.print(table)


@app.command("check")
def check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Lint the migrations: rollbacks, one head, and lock-safe SQL. Exit 1 on findings.

    Lint the migrations: every one has a rollback, one head, and lock-safe SQL (index without
    `CONCURRENTLY`, `NOT NULL` without default, type changes, renames, drops, constraints
    without `NOT VALID`, missing `lock_timeout`, …). Each finding names file, line and rule and
    says why; `-- lint: allow <rule> because <reason>` opts a migration out. Exit 1 on findings."""
    from server.schema import lint as migration_lint

    with session(ctx, as_json) as s:
        where = s.settings.migrations_dir
        findings = migration_lint.check_migrations(where)
    found = {"ok": not findings, "findings": [f.as_dict() for f in findings]}
    report(as_json, found, lambda: _print_findings(findings, str(where)))
    if findings:
        raise typer.Exit(FAILED)


def _print_findings(findings: list[Finding], where: str) -> None:
    if not findings:
        err_console.print(f"[green]no findings[/] in {where}")
        return
    # Compiler-style lines: editors and CI logs link `file:line` to the source.
    for f in findings:
        out_console.print(f"{f.file}:{f.line}: [bold]{f.rule}[/]: {f.message}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        out_console.print(f"    {f.why}", style="dim", highlight=False, soft_wrap=True)
    err_console.print(f"{len(findings)} finding(s) in {where}.")
    err_console.print(
        "Fix them, or opt out in the migration with `-- lint: allow <rule> because <reason>`."
    )


@app.command("migrate-test")
def migrate_test_command(
    ctx: typer.Context, newest: NewestOpt = 1, rows: RowsOpt = 20, as_json: JsonOpt = False
) -> None:
    """Apply, roll back and re-apply every migration in a scratch database (the stairway).

    In a scratch database it creates and drops: apply all, roll all back, the stairway (per
    migration: snapshot the schema from the catalogs, apply, roll back, compare, re-apply,
    compare), then seed R rows per table, roll back and re-apply the newest N (default 1) and
    compare row counts and checksums. Exit 1 on any difference, listing each."""
    from server.schema import migrate_test

    with database(ctx, as_json) as s:
        total = migrate_test.planned_steps(s.settings.migrations_dir, newest)
        with progress("migrate-test", total, "steps") as tick:
            result = migrate_test.run(s.database_url, s.settings.migrations_dir, newest=newest,
                                      rows=rows, tick=tick)  # fmt: skip
    report(as_json, result.as_dict(), lambda: _print_migrate_test(result))
    if not result.ok:
        raise typer.Exit(FAILED)


def _print_migrate_test(result: MigrateTestReport) -> None:
    table = Table(title=f"migrate-test in scratch database {result.database}")
    for col in ("phase", "subject", "result", "seconds", "differences"):
        table.add_column(col, overflow="fold")
    for step in result.steps:
        verdict = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
        table.add_row(step.phase, step.subject, verdict, f"{step.seconds:.2f}",
                      "\n".join(step.differences))  # fmt: skip
    out_console.print(table)
    passed = "[green]passed[/]" if result.ok else "[red]failed[/]"
    err_console.print(f"migrate-test {passed} in {result.seconds:.1f} s")
