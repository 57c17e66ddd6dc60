"""Every query of the unit catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.store import Conn

COLUMNS = "id, code, title, level, credits, created_at, updated_at"


def _like(text: str) -> str:
    """A substring pattern for ILIKE with the user's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page(
    conn: Conn, *, level: int | None, q: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Units ordered by code, and how many match in all."""
    pattern = _like(q) if q else None
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, count(*) OVER () AS total FROM units "  # nosec B608 # only the constant COLUMNS; values are $n args
        "WHERE ($1::smallint IS NULL OR level = $1) "
        "AND ($2::text IS NULL OR title ILIKE $2 OR code ILIKE $2) "
        "ORDER BY code LIMIT $3 OFFSET $4",
        level, pattern, limit, offset,
    )  # fmt: skip
    if rows:
        return [_unit(r) for r in rows], int(rows[0]["total"])
    if offset == 0:
        return [], 0
    total = await conn.fetchval(
        "SELECT count(*) FROM units WHERE ($1::smallint IS NULL OR level = $1) "
        "AND ($2::text IS NULL OR title ILIKE $2 OR code ILIKE $2)",
        level, pattern,
    )  # fmt: skip
    return [], int(total)


async def by_id(conn: Conn, unit_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM units WHERE id = $1", unit_id)  # nosec B608 # only the constant COLUMNS; values are $n args
    return _unit(row) if row else None


async def upsert(conn: Conn, units: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Insert new codes and update changed ones (codes compare case-insensitively);
    returns (inserted, updated). Unchanged rows are not touched."""
    rows = await conn.fetch(
        "INSERT INTO units (code, title, level, credits) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::smallint[]) "
        "ON CONFLICT ((lower(code))) DO UPDATE SET code = EXCLUDED.code, "
        "title = EXCLUDED.title, level = EXCLUDED.level, credits = EXCLUDED.credits, "
        "updated_at = now() "
        "WHERE (units.code, units.title, units.level, units.credits) IS DISTINCT FROM "
        "(EXCLUDED.code, EXCLUDED.title, EXCLUDED.level, EXCLUDED.credits) "
        "RETURNING (xmax = 0) AS inserted",
        [u["code"] for u in units],
        [u["title"] for u in units],
        [u["level"] for u in units],
        [u["credits"] for u in units],
    )
    inserted = sum(1 for r in rows if r["inserted"])
    return inserted, len(rows) - inserted


def _unit(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "code": row["code"],
        "title": row["title"],
        "level": row["level"],
        "credits": row["credits"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def insert(conn: Conn, unit: dict[str, Any]) -> dict[str, Any]:
    """A new unit; asyncpg's UniqueViolationError if its code is taken (in any case)."""
    row = await conn.fetchrow(
        f"INSERT INTO units (code, title, level, credits) VALUES ($1, $2, $3, $4) "  # nosec B608 # only the constant COLUMNS; values are $n args
        f"RETURNING {COLUMNS}",
        unit["code"], unit["title"], unit["level"], unit["credits"],
    )  # fmt: skip
    return _unit(row)


async def by_code(conn: Conn, code: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM units WHERE lower(code) = lower($1)", code)  # nosec B608 # only the constant COLUMNS; values are $n args
    return _unit(row) if row else None


async def update(conn: Conn, unit_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Set the given fields (code, title, level, credits); None if there is no such unit."""
    columns = [c for c in ("code", "title", "level", "credits") if c in changes]
    sets = "".join(f"{c} = ${i + 2}, " for i, c in enumerate(columns))
    row = await conn.fetchrow(
        f"UPDATE units SET {sets}updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",  # nosec B608 # column names from a fixed allowlist; values are $n args
        unit_id, *(changes[c] for c in columns),
    )  # fmt: skip
    return _unit(row) if row else None


async def assignments(conn: Conn, unit_id: int) -> int:
    found: int = await conn.fetchval("SELECT count(*) FROM assignments WHERE unit_id = $1", unit_id)
    return found


async def delete(conn: Conn, unit_id: int) -> bool:
    return (await conn.execute("DELETE FROM units WHERE id = $1", unit_id)) == "DELETE 1"
