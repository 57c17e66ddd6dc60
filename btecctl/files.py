"""btecctl files: list uploaded files by scan status, and queue scans for files without a
verdict (after a scanner outage, or when a scanner is added to a deployment that ran
without one)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import typer

from btecctl.output import (
    FAILED,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
    settings_of,
)
from server.config.settings import Settings
from server.platform.embedded import EmbeddedError, embedded_services

app = typer.Typer(no_args_is_help=True, help="Uploaded files: list by scan status, rescan.")
Status = Literal["pending", "clean", "infected", "error", "unscanned"]
LIST_SQL = (
    "SELECT f.id, u.email AS owner, f.filename, f.kind, f.size_bytes, f.scan_status, "
    "f.scan_detail, f.created_at FROM files f JOIN users u ON u.id = f.owner_id "
    "WHERE ($1::text IS NULL OR f.scan_status = $1) ORDER BY f.created_at DESC LIMIT $2"
)


def _run(ctx: typer.Context, as_json: bool, work: Any, *, redis: bool = False) -> Any:
    import asyncpg

    from server.domain.errors import DomainError

    try:
        with embedded_services(settings_of(ctx), redis=redis) as resolved:
            return asyncio.run(work(resolved))
    except DomainError as exc:  # the queue is unreachable
        fail(exc.detail, code=FAILED, as_json=as_json, problem=exc.code)
    except EmbeddedError as exc:
        fail(f"embedded server: {exc}", as_json=as_json)
    except asyncpg.UndefinedTableError:
        fail("the files table is missing: run btecctl db migrate first", as_json=as_json)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database or queue error: {type(exc).__name__}", as_json=as_json)


async def _fetch(settings: Settings, status: str | None, limit: int) -> list[dict[str, Any]]:
    from server.platform.postgres import connect_once

    assert settings.database_url is not None
    async with connect_once(settings.database_url.get_secret_value()) as conn:
        rows = await conn.fetch(LIST_SQL, status, limit)
    return [
        {**dict(r), "id": str(r["id"]), "created_at": r["created_at"].isoformat()} for r in rows
    ]


@app.command("list")
def list_files(
    ctx: typer.Context,
    status: Annotated[Status | None, typer.Option(help="Only files with this scan status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most files shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Uploaded files, newest first: owner, name, size and scan verdict."""

    async def work(settings: Settings) -> list[dict[str, Any]]:
        return await _fetch(settings, status, limit)

    found: list[dict[str, Any]] = _run(ctx, as_json, work)
    if as_json:
        emit_json({"files": found})
        return
    from rich.table import Table

    table = Table("id", "owner", "name", "size", "status", "detail", "uploaded")
    for f in found:
        table.add_row(f["id"], f["owner"], f["filename"], str(f["size_bytes"]),
                      f["scan_status"], f["scan_detail"] or "", f["created_at"][:19])  # fmt: skip
    out_console.print(table)


@app.command("rescan")
def rescan(
    ctx: typer.Context,
    unscanned: Annotated[
        bool,
        typer.Option(
            "--unscanned",
            help="Also files uploaded while no scanner was configured (`unscanned`).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue a scan for every file that is `pending` or `error` (and `unscanned` with
    --unscanned). The worker records each verdict."""
    settings = settings_of(ctx)
    if settings.clamd_url is None:
        fail("no scanner is configured: set BTEC_CLAMD_URL", code=USAGE, as_json=as_json)
    statuses = ["pending", "error", *(["unscanned"] if unscanned else [])]

    async def work(resolved: Settings) -> int:
        from btecctl.tasks import catalogue
        from server.platform.postgres import connect_once

        assert resolved.database_url is not None
        async with connect_once(resolved.database_url.get_secret_value()) as conn:
            # Unscanned files become pending: a scan is on its way.
            ids = await conn.fetch(
                "UPDATE files SET scan_status = 'pending', updated_at = now() "
                "WHERE scan_status = ANY($1::text[]) RETURNING id",
                statuses,
            )
        async with catalogue(resolved) as jobs:
            for row in ids:
                await jobs.enqueue("scan_file", file_id=str(row["id"]))
        return len(ids)

    queued: int = _run(ctx, as_json, work, redis=True)
    if as_json:
        emit_json({"ok": True, "queued": queued, "statuses": statuses})
    elif queued:
        err_console.print(f"[green]{queued} scans queued[/]; a worker records the verdicts.")
    else:
        err_console.print("nothing to scan")
