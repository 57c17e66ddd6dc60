"""The read side of the catalogue, shared by units and assignments: a page of a list and one
item by id, each as the JSON document the API serves (and the cache keeps)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.cache.core import EncodedJSON
from server.domain.errors import NotFound
from server.domain.pages import CATALOGUE_MAX_OFFSET, page
from server.store import Conn, Connect

Rows = tuple[list[dict[str, Any]], int]


async def listed(
    db: Connect, rows: Callable[..., Awaitable[Rows]], *, limit: int, offset: int, **filters: Any
) -> EncodedJSON:
    """One page of what `rows` (a store's `page`) finds with these filters, and the total."""
    async with db() as conn:
        items, total = await rows(conn, limit=limit, offset=offset, **filters)
    return EncodedJSON.of(
        page(items, total=total, limit=limit, offset=offset, max_offset=CATALOGUE_MAX_OFFSET)
    )


async def one(
    db: Connect, by_id: Callable[[Conn, int], Awaitable[dict[str, Any] | None]], noun: str, id_: int
) -> EncodedJSON:
    """The item `by_id` (a store's) finds, or 404 `not_found` naming the `noun`."""
    async with db() as conn:
        found = await by_id(conn, id_)
    if found is None:
        raise NotFound(f"no {noun} has id {id_}")
    return EncodedJSON.of(found)
