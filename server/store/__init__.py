"""SQL, one module per area; every function takes the connection, so callers own transactions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from asyncpg.pool import PoolConnectionProxy

Conn = PoolConnectionProxy | Any  # a pooled or a plain asyncpg connection
# How services reach the database: `async with db() as conn:` (the caller decides pooled or not).
Connect = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


def page_of(rows: Any) -> tuple[list[dict[str, Any]], int]:
    """The rows of a page query that counts them all (`count(*) OVER () AS total`): each row
    without its `total`, and the total (0 for a page past the end)."""
    total = int(rows[0]["total"]) if rows else 0
    return [{k: v for k, v in dict(r).items() if k != "total"} for r in rows], total
