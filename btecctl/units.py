"""btecctl units: import the unit catalogue from CSV, and list it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from server.services.units import ImportResult

app = typer.Typer(no_args_is_help=True, help="The unit catalogue: import from CSV, list.")
COLUMNS = ("code", "title", "level", "credits")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
SHOWN_ERRORS = 20


def _read(source: str, as_json: bool) -> str:
    """The file's text (`-` is stdin), refusing what is too big or not UTF-8."""
    try:
        raw = sys.stdin.buffer.read(MAX_BYTES + 1) if source == "-" else _head(Path(source))
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}", code=USAGE, as_json=as_json)
    if len(raw) > MAX_BYTES:
        fail(f"{source} is over {MAX_BYTES // 1024 // 1024} MiB", code=USAGE, as_json=as_json)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{source} is not UTF-8 (byte {exc.start})", code=USAGE, as_json=as_json)


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_BYTES + 1)


def parse_rows(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Validated units and errors keyed by CSV line number (the header is line 1)."""
    import csv

    from marshmallow import ValidationError

    from server.domain.units import UnitSchema
    from server.services.units import duplicates

    reader = csv.DictReader(text.splitlines(), restkey="_extra")
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown:
        need = f"need the columns {', '.join(COLUMNS)}"
        return [], {"header": [f"{need}; missing {missing or 'none'}, unknown {unknown or 'none'}"]}
    reader.fieldnames = header
    schema = UnitSchema()
    units: list[dict[str, Any]] = []
    lines: list[int] = []
    errors: dict[str, Any] = {}
    for number, row in enumerate(reader, 2):
        if number - 1 > MAX_ROWS:
            errors["rows"] = [f"more than {MAX_ROWS} rows"]
            break
        if "_extra" in row or None in row.values():
            errors[str(number)] = ["expected 4 fields"]
            continue
        try:
            units.append(schema.load(row))
            lines.append(number)
        except ValidationError as exc:
            errors[str(number)] = exc.messages
    errors.update(duplicates(units, lines, noun="line"))
    if not units and not errors:
        errors["rows"] = ["no units in the file"]
    return units, dict(sorted(errors.items(), key=lambda e: (not e[0].isdigit(), _line(e[0]))))


def _line(where: str) -> int:
    return int(where) if where.isdigit() else 0


async def _import(settings: Settings, units: list[dict[str, Any]]) -> ImportResult:
    import redis.asyncio as aioredis

    from server import __version__
    from server.cache.core import Cache
    from server.observability.metrics import Metrics
    from server.platform.postgres import connect_once
    from server.services.units import import_units

    assert settings.database_url is not None
    assert settings.redis_url is not None
    url = settings.database_url.get_secret_value()
    client = aioredis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
    )
    cache = Cache(client, settings, Metrics(version=__version__, release=settings.release))
    try:
        return await import_units(db=lambda: connect_once(url), cache=cache, units=units)
    finally:
        await client.aclose()


def _show_errors(errors: dict[str, Any], source: str, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": False, "error": f"{source} has errors; nothing was imported",
                   "errors": errors})  # fmt: skip
        raise typer.Exit(FAILED)
    for where, found in list(errors.items())[:SHOWN_ERRORS]:
        label = f"line {where}" if where.isdigit() else where
        err_console.print(f"{source}: {label}: {found}", highlight=False, markup=False)
    if len(errors) > SHOWN_ERRORS:
        err_console.print(f"... and {len(errors) - SHOWN_ERRORS} more")
    fail(f"{source} has errors; nothing was imported")


@app.command("import")
def import_command(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="CSV file with code,title,level,credits; - reads stdin.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate only; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add or update units by code from CSV, all or nothing; the cached catalogue is
    invalidated once the transaction commits."""
    import asyncpg

    from server.domain.errors import ValidationFailed

    units, errors = parse_rows(_read(source, as_json))
    if errors:
        _show_errors(errors, source, as_json)
    if dry_run:
        if as_json:
            emit_json({"ok": True, "dry_run": True, "rows": len(units)})
        else:
            err_console.print(f"{source}: {len(units)} valid units; nothing written (--dry-run)")
        return
    try:
        with (
            embedded_services(settings_of(ctx)) as resolved,
            err_console.status(f"importing {len(units)} units"),
        ):
            result = asyncio.run(_import(resolved, units))
    except EmbeddedError as exc:
        fail(f"embedded server: {exc}", as_json=as_json)
    except ValidationFailed as exc:
        _show_errors(exc.errors or {}, source, as_json)
    except asyncpg.UndefinedTableError:
        fail("the units table is missing: run btecctl db migrate first", as_json=as_json)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database error: {type(exc).__name__}; nothing was imported", as_json=as_json)
    _report(result.as_dict(), as_json)


def _report(result: dict[str, Any], as_json: bool) -> None:
    summary = (f"{result['rows']} rows: {result['inserted']} added, {result['updated']} updated, "
               f"{result['unchanged']} unchanged")  # fmt: skip
    if not result["cache_invalidated"]:
        fail(f"imported ({summary}), but the cache could not be invalidated; once Redis is "
             "back run: btecctl cache flush --tag units", as_json=as_json, **result)  # fmt: skip
    if as_json:
        emit_json({"ok": True, **result})
    else:
        err_console.print(f"[green]imported[/] {summary}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    level: Annotated[int | None, typer.Option(min=1, max=8, help="Only this level.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="Text in code or title.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The catalogue, read from PostgreSQL (not the cache), ordered by code."""
    import asyncpg

    async def every(settings: Settings) -> list[dict[str, Any]]:
        from server.platform.postgres import connect_once
        from server.services.units import catalogue

        assert settings.database_url is not None
        url = settings.database_url.get_secret_value()
        found: list[dict[str, Any]] = []
        while True:
            document = await catalogue(db=lambda: connect_once(url), cache=None, level=level,
                                   q=search.lower() if search else None, limit=100,
                                   offset=len(found))  # fmt: skip
            page = json.loads(document)
            found += page["items"]
            if len(found) >= page["total"] or not page["items"]:
                return found

    try:
        with embedded_services(settings_of(ctx), redis=False) as resolved:
            units = asyncio.run(every(resolved))
    except EmbeddedError as exc:
        fail(f"embedded PostgreSQL: {exc}", as_json=as_json)
    except asyncpg.UndefinedTableError:
        fail("the units table is missing: run btecctl db migrate first", as_json=as_json)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database error: {type(exc).__name__}", as_json=as_json)
    if as_json:
        emit_json({"units": units, "total": len(units)})
        return
    from rich.table import Table

    table = Table(title=f"{len(units)} units", title_justify="left")
    for column in ("code", "title", "level", "credits"):
        table.add_column(column, justify="right" if column in ("level", "credits") else "left")
    for u in units:
        table.add_row(u["code"], u["title"], str(u["level"]), str(u["credits"]))
    out_console.print(table)
