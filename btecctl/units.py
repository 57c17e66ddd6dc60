"""btecctl units: import the unit catalogue from CSV, and list it."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from btecctl.context import Session, field_errors_json, session
from btecctl.output import USAGE, JsonOpt, err_console, fail, noun, out_console, report

if TYPE_CHECKING:
    from server.domain.errors import FieldError

app = noun("The unit catalogue: import from CSV, list.")
MAX_BYTES = 5 * 1024 * 1024
SHOWN_ERRORS = 20
SourceArg = Annotated[
    str,
    typer.Argument(metavar="FILE", help="CSV file with code,title,level,credits; - reads stdin."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")]
LevelOpt = Annotated[int | None, typer.Option(min=1, max=8, metavar="N", help="Only this level.")]
SearchOpt = Annotated[
    str | None, typer.Option("--search", metavar="TEXT", help="Text in code or title.")
]


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


def _units(source: str, as_json: bool) -> list[dict[str, Any]]:
    """The file's units, or exit 1 listing every error by line."""
    from server.domain.errors import ValidationFailed
    from server.services.units import parse_csv

    try:
        return parse_csv(_read(source, as_json))
    except ValidationFailed as exc:
        _show_errors(exc.errors or (), source, as_json)


def _show_errors(errors: Sequence[FieldError], source: str, as_json: bool) -> NoReturn:
    if not as_json:
        _print_errors(errors, source)
    fail(f"{source} has errors; nothing was imported", as_json=as_json,
         errors=field_errors_json(errors))  # fmt: skip


def _print_errors(errors: Sequence[FieldError], source: str) -> None:
    """The first SHOWN_ERRORS errors, by line: `units.csv: line 4: code: k/1 is also line 2`."""
    for error in errors[:SHOWN_ERRORS]:
        said = f"{source}: {_where(error)}: {error.message}"
        err_console.print(said, highlight=False, markup=False)
    if len(errors) > SHOWN_ERRORS:
        err_console.print(f"... and {len(errors) - SHOWN_ERRORS} more")


def _where(error: FieldError) -> str:
    """`line 4: code`, `line 4`, or what concerns the whole file: `header`, `rows`."""
    first, *rest = error.field or ("file",)
    line = f"line {first}" if isinstance(first, int) else str(first)
    return f"{line}: {'.'.join(map(str, rest))}" if rest else line


@app.command("import")
def import_command(
    ctx: typer.Context, source: SourceArg, dry_run: DryRunOpt = False, as_json: JsonOpt = False
) -> None:
    """Add or update units by code from CSV, all or nothing; the cached catalogue is invalidated
    once the transaction commits.

    Add or update units by code from a CSV with the header `code,title,level,credits` (UTF-8, at
    most 5 MiB and 10,000 rows; `-` reads stdin), all or nothing in one transaction: any bad row
    lists the errors by line and imports nothing. After the commit it invalidates the cached
    catalogue (tag `units`); when that fails the import stays and it exits 1 with the remedy,
    `btecctl cache flush --tag units`. `--dry-run` validates only."""
    units = _units(source, as_json)
    if dry_run:
        said = f"{source}: {len(units)} valid units; nothing written (--dry-run)"
        report(
            as_json,
            {"ok": True, "dry_run": True, "rows": len(units)},
            lambda: err_console.print(said),
        )
        return
    with session(ctx, as_json, postgres=True, redis=True, note="nothing was imported") as s:
        result = _import(s, units, source)
    summary = (f"{result['rows']} rows: {result['inserted']} added, {result['updated']} updated, "
               f"{result['unchanged']} unchanged")  # fmt: skip
    if not result["cache_invalidated"]:
        fail(f"imported ({summary}), but the cache could not be invalidated; once Redis is "
             "back run: btecctl cache flush --tag units", as_json=as_json, **result)  # fmt: skip
    report(
        as_json, {"ok": True, **result}, lambda: err_console.print(f"[green]imported[/] {summary}")
    )


def _import(s: Session, units: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """The units written in one transaction, then the cache invalidated; a code given twice
    (in any case) refuses the file."""
    from server.domain.errors import ValidationFailed
    from server.services.units import import_units

    try:
        with err_console.status(f"importing {len(units)} units"):
            return s.run(import_units(db=s.db, cache=s.cache, units=units)).as_dict()
    except ValidationFailed as exc:
        _show_errors(exc.errors or (), source, s.as_json)


@app.command("list")
def list_command(
    ctx: typer.Context, level: LevelOpt = None, search: SearchOpt = None, as_json: JsonOpt = False
) -> None:
    """The catalogue, read from PostgreSQL (not the cache), ordered by code."""
    with session(ctx, as_json, postgres=True) as s:
        units = s.run(_every(s, level, search.lower() if search else None))
    report(as_json, {"units": units, "total": len(units)}, lambda: _print_units(units))


def _print_units(units: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(units)} units", title_justify="left")
    for column in ("code", "title", "level", "credits"):
        table.add_column(column, justify="right" if column in ("level", "credits") else "left")
    for u in units:
        table.add_row(u["code"], u["title"], str(u["level"]), str(u["credits"]))
    out_console.print(table)


async def _every(s: Session, level: int | None, q: str | None) -> list[dict[str, Any]]:
    """Every page of the catalogue the API serves, uncached."""
    from server.services.units import catalogue

    found: list[dict[str, Any]] = []
    while True:
        document = await catalogue(db=s.db, cache=None, level=level, q=q, limit=100,
                                   offset=len(found))  # fmt: skip
        page = json.loads(document)
        found += page["items"]
        if len(found) >= page["total"] or not page["items"]:
            return found
