"""The unit catalogue: cached reads, and imports that invalidate them once committed."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
from marshmallow import ValidationError

from server.cache.core import Cache, EncodedJSON, cached
from server.domain.errors import (
    FieldError,
    NotFound,
    UnitCodeTaken,
    UnitInUse,
    ValidationFailed,
    field_error,
)
from server.domain.fields import field_errors
from server.domain.units import UnitSchema
from server.services import catalogue as catalogue_read
from server.store import Connect
from server.store import units as store

TAG = "units"
# Assignment documents carry their unit's code and title: a unit's change reaches them too.
ASSIGNMENTS_TAG = "assignments"
TTL = 300.0  # the catalogue changes a few times a year; tags make writes visible at once
CSV_COLUMNS = ("code", "title", "level", "credits")
CSV_MAX_ROWS = 10_000


@cached("units.page", ttl=TTL, key="{level}:{q}:{limit}:{offset}", tags=(TAG,))
async def catalogue(
    *, db: Connect, cache: Cache | None, level: int | None, q: str | None, limit: int, offset: int
) -> EncodedJSON:
    """One page of units ordered by code, filtered by level and a search over code and title,
    as the JSON document the API serves (server.domain.pages)."""
    return await catalogue_read.listed(db, store.page, level=level, q=q, limit=limit, offset=offset)


@cached("units.one", ttl=TTL, key="{unit_id}", tags=(TAG,))
async def unit(*, db: Connect, cache: Cache | None, unit_id: int) -> EncodedJSON:
    """One unit as the JSON document the API serves."""
    return await catalogue_read.one(db, store.by_id, "unit", unit_id)


@dataclass(frozen=True)
class ImportResult:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    cache_invalidated: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def duplicates(
    units: Sequence[dict[str, Any]], numbers: Sequence[int] | None = None, noun: str = "row"
) -> list[FieldError]:
    """Codes given more than once (in any case), at (number, "code"): the number is the row
    from 1, or the caller's `numbers` (such as CSV lines)."""
    seen: dict[str, int] = {}
    found: list[FieldError] = []
    for index, item in enumerate(units):
        number = numbers[index] if numbers is not None else index + 1
        first = seen.setdefault(item["code"].lower(), number)
        if first != number:
            found.append(field_error((number, "code"), f"{item['code']} is also {noun} {first}"))
    return found


def parse_csv(text: str) -> list[dict[str, Any]]:
    """The units of a CSV catalogue (header `code,title,level,credits`), each row checked by
    the API's own unit rules; ValidationFailed lists every error by CSV line (the header is
    line 1: each error's field is the line and the column, or `header` or `rows`), so a file
    is taken whole or not at all."""
    reader = csv.DictReader(text.splitlines(), restkey="_extra")
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        need = f"need the columns {', '.join(CSV_COLUMNS)}"
        said = f"{need}; missing {missing or 'none'}, unknown {unknown or 'none'}"
        raise ValidationFailed(errors=[field_error("header", said)])
    reader.fieldnames = header
    units, lines, errors = _rows(reader)
    errors += duplicates(units, lines, noun="line")
    if not units and not errors:
        errors.append(field_error("rows", "no units in the file"))
    if errors:
        raise ValidationFailed(errors=sorted(errors, key=_by_line))
    return units


def _rows(reader: csv.DictReader[str]) -> tuple[list[dict[str, Any]], list[int], list[FieldError]]:
    """The valid units with their line numbers, and the errors of the other lines."""
    schema = UnitSchema()
    units: list[dict[str, Any]] = []
    lines: list[int] = []
    errors: list[FieldError] = []
    for number, row in enumerate(reader, 2):
        if number - 1 > CSV_MAX_ROWS:
            errors.append(field_error("rows", f"more than {CSV_MAX_ROWS} rows"))
            break
        if "_extra" in row or None in row.values():
            errors.append(field_error(number, "expected 4 fields"))
            continue
        try:
            units.append(schema.load(row))
            lines.append(number)
        except ValidationError as exc:
            errors += field_errors(exc.messages, schema, at=(number,))
    return units, lines, errors


def _by_line(error: FieldError) -> tuple[bool, int]:
    """Line numbers in order, then what concerns the whole file."""
    line = error.field[0]
    return not isinstance(line, int), line if isinstance(line, int) else 0


async def import_units(
    *, db: Connect, cache: Cache | None, units: Sequence[dict[str, Any]]
) -> ImportResult:
    """Insert or update units by code in one transaction, then invalidate the cached
    catalogue. All or nothing: a code given twice refuses the whole import."""
    if repeated := duplicates(units):
        raise ValidationFailed(errors=repeated)
    async with db() as conn, conn.transaction():
        inserted, updated = await store.upsert(conn, units)
    invalidated = True
    if cache is not None and (inserted or updated):
        invalidated = await cache.invalidate(TAG, ASSIGNMENTS_TAG)
    return ImportResult(len(units), inserted, updated, len(units) - inserted - updated, invalidated)


async def _invalidate(cache: Cache | None) -> None:
    """After a committed change of a unit: the catalogue and the assignments that show it."""
    if cache is not None:
        await cache.invalidate(TAG, ASSIGNMENTS_TAG)


async def _taken(conn: Any, code: str) -> UnitCodeTaken:
    other = await store.by_code(conn, code)
    where = f" (id {other['id']})" if other else ""
    return UnitCodeTaken(f"unit {code} exists{where}")


async def create_unit(*, db: Connect, cache: Cache | None, unit: dict[str, Any]) -> dict[str, Any]:
    """A new unit; 409 `unit_code_taken` if its code is in use (codes ignore case)."""
    async with db() as conn:
        try:
            made = await store.insert(conn, unit)
        except asyncpg.UniqueViolationError:
            raise await _taken(conn, unit["code"]) from None
    await _invalidate(cache)
    return made


async def update_unit(
    *, db: Connect, cache: Cache | None, unit_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    async with db() as conn:
        try:
            changed = await store.update(conn, unit_id, changes)
        except asyncpg.UniqueViolationError:
            raise await _taken(conn, changes["code"]) from None
    if changed is None:
        raise NotFound(f"no unit has id {unit_id}")
    await _invalidate(cache)
    return changed


async def delete_unit(*, db: Connect, cache: Cache | None, unit_id: int) -> None:
    """Remove a unit with no assignments; 409 `unit_in_use` while it has any."""
    async with db() as conn:
        try:
            gone = await store.delete(conn, unit_id)
        except asyncpg.ForeignKeyViolationError:
            count = await store.assignments(conn, unit_id)
            raise UnitInUse(f"unit {unit_id} has {count} assignments") from None
    if not gone:
        raise NotFound(f"no unit has id {unit_id}")
    await _invalidate(cache)
