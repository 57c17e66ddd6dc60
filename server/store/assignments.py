"""Every query of assignments, their criteria and their assessors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.store import Conn
from server.store.units import _like

# Criteria in BTEC order: P before M before D, then by number.
CRITERIA_ORDER = "array_position(ARRAY['P', 'M', 'D'], c.band), c.number"
CODES = (
    f"ARRAY(SELECT c.code FROM assignment_criteria c WHERE c.assignment_id = a.id "  # nosec B608 # only the constant CRITERIA_ORDER
    f"ORDER BY {CRITERIA_ORDER})"
)
SUMMARY = (
    "a.id, a.unit_id, u.code AS unit_code, a.title, a.opens_at, a.deadline, a.updated_at, "
    f"{CODES} AS criteria"
)
FILTER = (
    "($1::bigint IS NULL OR a.unit_id = $1) "
    "AND ($2::text IS NULL OR a.title ILIKE $2 OR a.brief ILIKE $2)"
)


async def page(
    conn: Conn, *, unit_id: int | None, q: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Assignments by deadline (soonest first), and how many match in all."""
    pattern = _like(q) if q else None
    rows = await conn.fetch(
        f"SELECT {SUMMARY}, count(*) OVER () AS total FROM assignments a "  # nosec B608 # only the constants SUMMARY and FILTER; values are $n args
        f"JOIN units u ON u.id = a.unit_id WHERE {FILTER} "
        "ORDER BY a.deadline, a.id LIMIT $3 OFFSET $4",
        unit_id, pattern, limit, offset,
    )  # fmt: skip
    if rows:
        return [summary(r) for r in rows], int(rows[0]["total"])
    if offset == 0:
        return [], 0
    total = await conn.fetchval(
        f"SELECT count(*) FROM assignments a WHERE {FILTER}",  # nosec B608 # only the constant FILTER; values are $n args
        unit_id, pattern,
    )  # fmt: skip
    return [], int(total)


async def by_id(conn: Conn, assignment_id: int) -> dict[str, Any] | None:
    """An assignment in full: its unit, brief, criteria and assessors."""
    row = await conn.fetchrow(
        "SELECT a.id, a.unit_id, u.code AS unit_code, u.title AS unit_title, a.title, a.brief, "
        "a.opens_at, a.deadline, a.created_by, a.created_at, a.updated_at, "
        "ARRAY(SELECT assessor_id FROM assignment_assessors s WHERE s.assignment_id = a.id "
        "ORDER BY assessor_id) AS assessor_ids "
        "FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.id = $1",
        assignment_id,
    )
    if row is None:
        return None
    criteria = await conn.fetch(
        "SELECT c.code, c.band, c.description FROM assignment_criteria c "  # nosec B608 # only the constant CRITERIA_ORDER; values are $n args
        f"WHERE c.assignment_id = $1 ORDER BY {CRITERIA_ORDER}",
        assignment_id,
    )
    return {
        "id": row["id"],
        "unit": {"id": row["unit_id"], "code": row["unit_code"], "title": row["unit_title"]},
        "title": row["title"],
        "brief": row["brief"],
        "opens_at": row["opens_at"].isoformat(),
        "deadline": row["deadline"].isoformat(),
        "criteria": [dict(c) for c in criteria],
        "assessor_ids": list(row["assessor_ids"]),
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def lock(conn: Conn, assignment_id: int, *, share: bool = False) -> Any:
    """The assignment's row, locked for this transaction (None if there is none). Edits take
    it FOR UPDATE and grading FOR SHARE: criteria never change under a grade being given."""
    mode = "FOR SHARE" if share else "FOR UPDATE"
    return await conn.fetchrow(
        "SELECT id, unit_id, title, opens_at, deadline, now() AS now FROM assignments "  # nosec B608 # mode is FOR SHARE or FOR UPDATE, a literal
        f"WHERE id = $1 {mode}",
        assignment_id,
    )


async def lock_for_grading(conn: Conn, assignment_id: int, assessor_id: int) -> Any:
    """For a grade: the assignment's row locked FOR SHARE (its criteria stay put), whether
    `assessor_id` assesses it, and its criteria codes; None if there is no such assignment."""
    return await conn.fetchrow(
        "SELECT a.id, EXISTS (SELECT 1 FROM assignment_assessors s WHERE s.assignment_id = a.id "
        "AND s.assessor_id = $2) AS assesses, "
        "ARRAY(SELECT c.code FROM assignment_criteria c WHERE c.assignment_id = a.id) AS codes "
        "FROM assignments a WHERE a.id = $1 FOR SHARE OF a",
        assignment_id, assessor_id,
    )  # fmt: skip


async def insert(conn: Conn, data: dict[str, Any], created_by: int) -> int:
    found: int = await conn.fetchval(
        "INSERT INTO assignments (unit_id, title, brief, opens_at, deadline, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        data["unit_id"],
        data["title"],
        data["brief"],
        data["opens_at"],
        data["deadline"],
        created_by,
    )
    return found


async def update(conn: Conn, assignment_id: int, changes: dict[str, Any]) -> None:
    """Set the given plain columns (title, brief, opens_at, deadline, unit_id)."""
    allowed = ("unit_id", "title", "brief", "opens_at", "deadline")
    columns = [c for c in allowed if c in changes]
    assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    await conn.execute(
        f"UPDATE assignments SET {assignments}, updated_at = now() WHERE id = $1",  # nosec B608 # column names from the `allowed` tuple; values are $n args
        assignment_id, *(changes[c] for c in columns),
    )  # fmt: skip


async def set_criteria(conn: Conn, assignment_id: int, criteria: Sequence[dict[str, Any]]) -> None:
    await conn.execute("DELETE FROM assignment_criteria WHERE assignment_id = $1", assignment_id)
    await conn.execute(
        "INSERT INTO assignment_criteria (assignment_id, band, number, description) "
        "SELECT $1, * FROM unnest($2::text[], $3::smallint[], $4::text[])",
        assignment_id,
        [c["code"][0] for c in criteria],
        [int(c["code"][1:]) for c in criteria],
        [c["description"] for c in criteria],
    )


async def set_assessors(conn: Conn, assignment_id: int, assessor_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM assignment_assessors WHERE assignment_id = $1", assignment_id)
    await conn.execute(
        "INSERT INTO assignment_assessors (assignment_id, assessor_id) "
        "SELECT $1, unnest($2::bigint[])",
        assignment_id, list(assessor_ids),
    )  # fmt: skip


async def not_assessors(conn: Conn, user_ids: Sequence[int]) -> list[int]:
    """Those of `user_ids` that are not active assessors or admins."""
    rows = await conn.fetch(
        "SELECT id FROM unnest($1::bigint[]) AS given(id) WHERE NOT EXISTS (SELECT 1 FROM "
        "users u WHERE u.id = given.id AND u.is_active AND u.role IN ('assessor', 'admin'))",
        list(user_ids),
    )
    return [r["id"] for r in rows]


async def assesses(conn: Conn, assignment_id: int, user_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM assignment_assessors "
            "WHERE assignment_id = $1 AND assessor_id = $2)",
            assignment_id,
            user_id,
        )
    )


async def graded(conn: Conn, assignment_id: int) -> int:
    """How many of the assignment's submissions have a grade."""
    found: int = await conn.fetchval(
        "SELECT count(*) FROM grades g JOIN submissions s ON s.id = g.submission_id "
        "WHERE s.assignment_id = $1",
        assignment_id,
    )
    return found


async def submitted(conn: Conn, assignment_id: int) -> int:
    found: int = await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE assignment_id = $1", assignment_id
    )
    return found


async def relate_late(conn: Conn, assignment_id: int) -> None:
    """After a deadline moves: each submission is late by the new deadline."""
    await conn.execute(
        "UPDATE submissions s SET late = s.submitted_at > a.deadline FROM assignments a "
        "WHERE a.id = s.assignment_id AND a.id = $1 AND s.late <> (s.submitted_at > a.deadline)",
        assignment_id,
    )


async def delete(conn: Conn, assignment_id: int) -> bool:
    return (
        await conn.execute("DELETE FROM assignments WHERE id = $1", assignment_id)
    ) == "DELETE 1"


def summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "unit_id": row["unit_id"],
        "unit_code": row["unit_code"],
        "title": row["title"],
        "opens_at": row["opens_at"].isoformat(),
        "deadline": row["deadline"].isoformat(),
        "criteria": list(row["criteria"]),
        "updated_at": row["updated_at"].isoformat(),
    }
