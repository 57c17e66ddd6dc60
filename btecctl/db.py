"""btecctl db: migrate, roll back and inspect the schema; read a running server's pool."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from btecctl.health import default_url
from btecctl.output import (
    CONFIG,
    FAILED,
    UNREACHABLE,
    USAGE,
    JsonOpt,
    cli_logging,
    emit_json,
    err_console,
    fail,
    mask_url,
    out_console,
    progress,
    settings_of,
)
from server.config.settings import Settings
from server.domain.text import describe
from server.platform.embedded import EmbeddedError, embedded_services

if TYPE_CHECKING:
    from server.schema.migrate_test import Report as MigrateTestReport

app = typer.Typer(no_args_is_help=True, help="Schema migrations and the database pool.")


@contextlib.contextmanager
def database(settings: Settings, as_json: bool) -> Iterator[Settings]:
    """Settings pointing at a reachable database; embedded PostgreSQL is started if needed."""
    import psycopg

    cli_logging(as_json)
    try:
        with embedded_services(settings, redis=False) as resolved:
            _reachable(resolved, as_json)
            yield resolved
    except EmbeddedError as exc:
        fail(f"embedded PostgreSQL: {exc}", as_json=as_json)
    except psycopg.Error as exc:
        fail(f"database error: {describe(exc)}", as_json=as_json)


def _reachable(settings: Settings, as_json: bool) -> None:
    import psycopg

    assert settings.database_url is not None
    try:
        psycopg.connect(settings.database_url.get_secret_value(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        fail(f"database unreachable: {describe(exc)}", code=UNREACHABLE, as_json=as_json)


@contextlib.contextmanager
def migration_lock(as_json: bool) -> Iterator[None]:
    """yoyo's lock timeout as a clean failure."""
    from yoyo.exceptions import LockTimeout

    try:
        yield
    except LockTimeout as exc:
        fail(f"another process holds the migration lock: {exc}", as_json=as_json)


def _target(settings: Settings) -> str:
    assert settings.database_url is not None
    return mask_url(settings.database_url.get_secret_value())


@app.command("migrate")
def migrate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Apply every pending migration, under the migration lock."""
    from server.schema import migrations

    with (
        database(settings_of(ctx), as_json) as settings,
        migration_lock(as_json),
        err_console.status("applying migrations…"),
    ):
        applied = migrations.migrate(settings)
    if as_json:
        emit_json({"ok": True, "applied": applied})
        return
    for mid in applied:
        err_console.print(f"[green]applied[/] {mid}")
    err_console.print(f"{len(applied)} migration(s) applied; the schema is at head.")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List migrations and whether each is applied."""
    from server.schema import migrations

    with database(settings_of(ctx), as_json) as settings:
        states = migrations.status(settings)
        target = _target(settings)
    pending = [s.id for s in states if not s.applied]
    if as_json:
        emit_json(
            {"database": target, "migrations": [s.as_dict() for s in states], "pending": pending}
        )
        return
    table = Table(title=f"migrations on {target}", title_justify="left")
    table.add_column("id")
    table.add_column("state")
    table.add_column("applied at (UTC)")
    for s in states:
        state = "[green]applied[/]" if s.applied else "[yellow]pending[/]"
        when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else ""
        table.add_row(s.id, state, when)
    out_console.print(table)
    err_console.print(f"{len(pending)} pending.")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Roll back this many migrations [default: 1].")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Roll back every migration applied after this id.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be rolled back.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll back the newest migrations (asks first unless --yes)."""
    from server.schema import migrations

    if steps is not None and to is not None:
        fail("use --steps or --to, not both", code=USAGE, as_json=as_json)
    with database(settings_of(ctx), as_json) as settings, migration_lock(as_json):
        try:
            plan = migrations.plan_rollback(settings, steps, to)
        except ValueError as exc:
            fail(str(exc), code=USAGE, as_json=as_json)
        target = _target(settings)
        if not plan or dry_run:
            _report_rollback(plan, target, as_json, dry_run=True)
            return
        if not yes:
            if as_json:
                fail("confirmation needed: pass --yes", code=USAGE, as_json=True)
            err_console.print(f"Roll back on [bold]{target}[/]: " + ", ".join(plan))
            if not typer.confirm("Proceed?", default=False, err=True):
                raise typer.Exit(FAILED)
        with err_console.status("rolling back…"):
            done = migrations.rollback(settings, steps, to)
    _report_rollback(done, target, as_json, dry_run=False)


def _report_rollback(ids: list[str], target: str, as_json: bool, *, dry_run: bool) -> None:
    if as_json:
        emit_json({"ok": True, "database": target, "dry_run": dry_run, "rolled_back": ids})
        return
    verb = "would roll back" if dry_run else "rolled back"
    for mid in ids:
        err_console.print(f"[yellow]{verb}[/] {mid}")
    if not ids:
        err_console.print("nothing to roll back.")


@app.command("pool-stats")
def pool_stats(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Server base URL.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the database pool metrics of a running server (from its /metrics)."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    settings = settings_of(ctx)
    base = (url or default_url(settings)).rstrip("/")
    req = urllib.request.Request(base + "/metrics")  # noqa: S310
    if settings.metrics_token:
        req.add_header("Authorization", f"Bearer {settings.metrics_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        fail(f"/metrics answered {exc.code}", as_json=as_json)
    except (urllib.error.URLError, OSError) as exc:
        fail(f"unreachable: {base} ({exc})", code=UNREACHABLE, as_json=as_json)
    stats: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("btec_db_pool"):
            for sample in family.samples:
                if not sample.labels or sample.name.endswith(("_sum", "_count")):
                    stats[sample.name] = sample.value
    if as_json:
        emit_json(stats)
        return
    table = Table(title=f"database pool of {base}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(stats.items()):
        table.add_row(name, f"{value:g}")
    out_console.print(table)


@app.command("check")
def check(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Lint the migrations: rollbacks, one head, and lock-safe SQL. Exit 1 on findings."""
    from server.schema import lint as migration_lint

    settings = settings_of(ctx)
    try:
        findings = migration_lint.check_migrations(settings.migrations_dir)
    except migration_lint.SquawkError as exc:
        fail(str(exc), code=CONFIG, as_json=as_json)
    if as_json:
        emit_json({"ok": not findings, "findings": [f.as_dict() for f in findings]})
    elif findings:
        # Compiler-style lines: editors and CI logs link `file:line` to the source.
        for f in findings:
            out_console.print(
                f"{f.file}:{f.line}: [bold]{f.rule}[/]: {f.message}",
                highlight=False,
                soft_wrap=True,
            )
            out_console.print(f"    {f.why}", style="dim", highlight=False, soft_wrap=True)
        err_console.print(f"{len(findings)} finding(s) in {settings.migrations_dir}.")
        err_console.print(
            "Fix them, or opt out in the migration with `-- lint: allow <rule> because <reason>`."
        )
    else:
        err_console.print(f"[green]no findings[/] in {settings.migrations_dir}")
    if findings:
        raise typer.Exit(FAILED)


@app.command("migrate-test")
def migrate_test_command(
    ctx: typer.Context,
    newest: Annotated[
        int, typer.Option(min=0, help="Roll back and re-apply this many with seeded data.")
    ] = 1,
    rows: Annotated[int, typer.Option(min=1, max=10000, help="Rows seeded per table.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Apply, roll back and re-apply every migration in a scratch database (the stairway)."""
    from server.schema import migrate_test

    settings = settings_of(ctx)
    with database(settings, as_json) as resolved:
        assert resolved.database_url is not None
        total = migrate_test.planned_steps(resolved.migrations_dir, newest)
        with progress("migrate-test", total, "steps") as tick:
            report = migrate_test.run(
                resolved.database_url.get_secret_value(),
                resolved.migrations_dir,
                newest=newest,
                rows=rows,
                tick=tick,
            )
    _report_migrate_test(report, as_json)
    if not report.ok:
        raise typer.Exit(FAILED)


def _report_migrate_test(report: MigrateTestReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_dict())
        return
    table = Table(title=f"migrate-test in scratch database {report.database}")
    for col in ("phase", "subject", "result", "seconds", "differences"):
        table.add_column(col, overflow="fold")
    for s in report.steps:
        result = "[green]ok[/]" if s.ok else "[red]FAILED[/]"
        table.add_row(s.phase, s.subject, result, f"{s.seconds:.2f}", "\n".join(s.differences))
    out_console.print(table)
    verdict = "[green]passed[/]" if report.ok else "[red]failed[/]"
    err_console.print(f"migrate-test {verdict} in {report.seconds:.1f} s")
