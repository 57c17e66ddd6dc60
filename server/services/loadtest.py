"""Removing the test data `btecctl perf` seeded into a server (server/store/loadtest.py says how
it is tagged): all of one tag, or every tag, in one transaction; the stored bytes of its files
once that committed; then the read cache's units and assignments.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from server.cache.core import Cache
from server.platform.storage import Storage
from server.services.files import discard
from server.services.units import ASSIGNMENTS_TAG
from server.services.units import TAG as UNITS_TAG
from server.store import Connect
from server.store import loadtest as store

TAG = re.compile(r"perf-([0-9a-f]{6})")


def pattern_of(tag: str | None) -> str:
    """The store's pattern for `tag` (`perf-<6 hex digits>`), or for every tag when None."""
    if tag is None:
        return store.TAG_PATTERN
    found = TAG.fullmatch(tag)
    if found is None:
        raise ValueError(f"{tag!r} is not a tag of perf test data: perf- and 6 hex digits")
    return found.group(1)


async def _found(conn: Any, tag: str | None) -> dict[str, Any]:
    """What carries `tag` (or any tag): the tags found and the rows of each kind."""
    tags = [f"perf-{t}" for t in await store.tags(conn)]
    rows = await store.counts(conn, pattern_of(tag))
    return {"tags": [t for t in tags if tag in (None, t)], "rows": rows}


async def tagged(*, db: Connect, tag: str | None) -> dict[str, Any]:
    """What carries `tag` (or any tag): the tags found and the rows of each kind."""
    async with db() as conn:
        return await _found(conn, tag)


async def remove(
    *, db: Connect, storage: Storage, cache: Cache | None, tag: str | None
) -> dict[str, Any]:
    """Delete what carries `tag` (or any tag): what went, as `tagged` counts it."""
    pattern = pattern_of(tag)
    async with db() as conn, conn.transaction():
        found = await _found(conn, tag)
        files = await store.delete(conn, pattern)
    await asyncio.shield(asyncio.gather(*(discard(storage, f["storage_key"]) for f in files)))
    if cache is not None and (found["rows"]["units"] or found["rows"]["assignments"]):
        await cache.invalidate(UNITS_TAG, ASSIGNMENTS_TAG)
    return found
