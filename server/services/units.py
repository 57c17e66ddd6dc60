"""The unit catalogue: cached reads, and imports that invalidate them once committed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from server.errors import NotFound, ValidationFailed
from server.infra.cache import Cache, EncodedJSON, cached
from server.store import units as store

Connect = Callable[[], contextlib.AbstractAsyncContextManager[Any]]
TAG = "units"
TTL = 300.0  # the catalogue changes a few times a year; tags make writes visible at once


@cached("units.page", ttl=TTL, key="{level}:{q}:{limit}:{offset}", tags=(TAG,))
async def catalogue(
    *, db: Connect, cache: Cache | None, level: int | None, q: str | None, limit: int, offset: int
) -> EncodedJSON:
    """One page of units ordered by code, filtered by level and a search over code and title,
    as the JSON document the API serves: `{"items", "total", "limit", "offset"}`."""
    async with db() as conn:
        items, total = await store.page(conn, level=level, q=q, limit=limit, offset=offset)
    return EncodedJSON.of({"items": items, "total": total, "limit": limit, "offset": offset})


@cached("units.one", ttl=TTL, key="{unit_id}", tags=(TAG,))
async def unit(*, db: Connect, cache: Cache | None, unit_id: int) -> EncodedJSON:
    """One unit as the JSON document the API serves."""
    async with db() as conn:
        found = await store.by_id(conn, unit_id)
    if found is None:
        raise NotFound(f"no unit has id {unit_id}")
    return EncodedJSON.of(found)


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
) -> dict[str, Any]:
    """Codes given more than once (in any case), keyed by their number: the row from 1, or
    the caller's `numbers` (such as CSV lines)."""
    seen: dict[str, int] = {}
    found: dict[str, Any] = {}
    for index, item in enumerate(units):
        number = numbers[index] if numbers is not None else index + 1
        first = seen.setdefault(item["code"].lower(), number)
        if first != number:
            found[str(number)] = {"code": [f"{item['code']} is also {noun} {first}"]}
    return found


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
        invalidated = await cache.invalidate(TAG)
    return ImportResult(len(units), inserted, updated, len(units) - inserted - updated, invalidated)
