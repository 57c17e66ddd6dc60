"""A page of a list, as every list of the API answers it: its items, the total, the limit and
offset asked for, and where the next page starts (`next_offset`, null on the last page or
past the list's furthest offset), which the OpenAPI document's `next` link of each list
reads (server.http.contract)."""

from __future__ import annotations

from typing import Any

MAX_OFFSET = 1_000_000  # the furthest a list pages, unless it says less
CATALOGUE_MAX_OFFSET = 100_000  # units and assignments: each page of them is cached


def page(
    items: list[Any], *, total: int, limit: int, offset: int, max_offset: int = MAX_OFFSET
) -> dict[str, Any]:
    after = offset + limit
    more = after < total and after <= max_offset
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": after if more else None,
    }
