"""btecctl assessment: similarity flags for review, and similarity checks queued again (after
a queue outage left submissions unchecked, or after BTEC_SIMILARITY_THRESHOLD changed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from btecctl.output import (
    FAILED,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
    progress,
    settings_of,
)
from server.config.settings import Settings
from server.platform.embedded import EmbeddedError, embedded_services

app = typer.Typer(no_args_is_help=True, help="Assessment: similarity flags and rechecks.")
AssignmentOpt = Annotated[
    int | None, typer.Option("--assignment", min=1, help="Only this assignment's submissions.")
]
FLAGS_SQL = (
    "SELECT s.assignment_id, f.submission_id, su.email AS student, f.other_id, "
    "ou.email AS other_student, f.score, f.checked_at FROM similarity_flags f "
    "JOIN submissions s ON s.id = f.submission_id JOIN users su ON su.id = s.student_id "
    "JOIN submissions o ON o.id = f.other_id JOIN users ou ON ou.id = o.student_id "
    "WHERE ($1::bigint IS NULL OR s.assignment_id = $1) "
    "ORDER BY f.score DESC, f.submission_id, f.other_id LIMIT $2"
)


@contextlib.contextmanager
def _failures(as_json: bool) -> Iterator[None]:
    import asyncpg

    from server.domain.errors import DomainError

    try:
        yield
    except DomainError as exc:  # the queue is unreachable
        fail(exc.detail, code=FAILED, as_json=as_json, problem=exc.code)
    except EmbeddedError as exc:
        fail(f"embedded server: {exc}", as_json=as_json)
    except asyncpg.UndefinedTableError:
        fail("the assessment tables are missing: run btecctl db migrate first", as_json=as_json)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database or queue error: {type(exc).__name__}", as_json=as_json)


@app.command("flags")
def flags(
    ctx: typer.Context,
    assignment: AssignmentOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most pairs shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Pairs of submissions flagged as alike, most alike first."""

    async def work(settings: Settings) -> list[dict[str, Any]]:
        from server.platform.postgres import connect_once

        assert settings.database_url is not None
        async with connect_once(settings.database_url.get_secret_value()) as conn:
            rows = await conn.fetch(FLAGS_SQL, assignment, limit)
        return [
            {**dict(r), "score": round(float(r["score"]), 4),
             "checked_at": r["checked_at"].isoformat()}
            for r in rows
        ]  # fmt: skip

    with _failures(as_json), embedded_services(settings_of(ctx), redis=False) as resolved:
        found = asyncio.run(work(resolved))
    if as_json:
        emit_json({"flags": found})
        return
    from rich.table import Table

    table = Table("assignment", "submission", "student", "alike", "student", "score", "checked")
    for f in found:
        table.add_row(str(f["assignment_id"]), str(f["submission_id"]), f["student"],
                      str(f["other_id"]), f["other_student"], f"{f['score']:.2f}",
                      f["checked_at"][:19])  # fmt: skip
    out_console.print(table)


@app.command("recheck")
def recheck(
    ctx: typer.Context,
    assignment: AssignmentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a similarity check for every submission (of one assignment with --assignment);
    a worker records the flags at the BTEC_SIMILARITY_THRESHOLD in force."""

    async def work(resolved: Settings) -> int:
        from btecctl.tasks import catalogue
        from server.platform.postgres import connect_once

        assert resolved.database_url is not None
        async with connect_once(resolved.database_url.get_secret_value()) as conn:
            rows = await conn.fetch(
                "SELECT id, resubmissions FROM submissions "
                "WHERE ($1::bigint IS NULL OR assignment_id = $1) ORDER BY id",
                assignment,
            )
        stamp = int(time.time())  # a new key: checks done before are not "already done"
        async with catalogue(resolved) as jobs:
            with progress("queueing", len(rows), "checks") as tick:
                for row in rows:
                    await jobs.enqueue(
                        "check_similarity",
                        key=f"similarity:{row['id']}:{row['resubmissions']}:recheck-{stamp}",
                        submission_id=row["id"],
                        resubmissions=row["resubmissions"],
                    )
                    tick(str(row["id"]))
        return len(rows)

    with _failures(as_json), embedded_services(settings_of(ctx), redis=True) as resolved:
        queued = asyncio.run(work(resolved))
    if as_json:
        emit_json({"ok": True, "queued": queued, "assignment": assignment})
    elif queued:
        err_console.print(f"[green]{queued} similarity checks queued[/]; a worker records flags.")
    else:
        err_console.print("no submissions to check")
