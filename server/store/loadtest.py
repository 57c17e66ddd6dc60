"""Every query of the test data `btecctl perf` seeds into a server: found by its tag.

The seed tags what it makes (btecctl/loadtest/seed.py): accounts are
`<role><n>.perf-<hex>@example.org` (or `signin<n>.perf-<hex>@...`), units are
`PERF-<hex>/U<n>`. The assignments of those units, the submissions to them or by those
accounts, their grades, flags and evidence, and the accounts' files go with them. The audit log
keeps its rows: it records what happened, test or not.
"""

from __future__ import annotations

from typing import Any

from server.store import Conn

TAG_PATTERN = "[0-9a-f]{6}"  # secrets.token_hex(3), the seed's tag after `perf-`

# Each query takes $1, the tag's pattern: one tag (its hex) or any (TAG_PATTERN).
USERS = r"SELECT id FROM users WHERE email ~ ('^[a-z]+[0-9]+\.perf-(' || $1 || ')@example\.org$')"
UNITS = r"SELECT id FROM units WHERE code ~ ('^PERF-(' || $1 || ')/U[0-9]+$')"
ASSIGNMENTS = f"SELECT id FROM assignments WHERE unit_id IN ({UNITS})"  # nosec B608 # only constant SQL; the tag is an argument
SUBMISSIONS = (
    f"SELECT id FROM submissions WHERE assignment_id IN ({ASSIGNMENTS}) "  # nosec B608 # only constant SQL; the tag is an argument
    f"OR student_id IN ({USERS})"
)
FILES = f"SELECT id FROM files WHERE owner_id IN ({USERS})"  # nosec B608 # only constant SQL; the tag is an argument
COUNTS = {"users": USERS, "units": UNITS, "assignments": ASSIGNMENTS,
          "submissions": SUBMISSIONS, "files": FILES}  # fmt: skip


async def tags(conn: Conn) -> list[str]:
    """The tags of the test data in the database, oldest first."""
    rows = await conn.fetch(
        r"SELECT tag FROM (SELECT substring(email from '\.perf-([0-9a-f]{6})@') AS tag, "
        r"created_at FROM users UNION ALL SELECT substring(code from '^PERF-([0-9a-f]{6})/'), "
        r"created_at FROM units) AS t WHERE tag IS NOT NULL GROUP BY tag ORDER BY min(created_at)"
    )
    return [str(r["tag"]) for r in rows]


async def counts(conn: Conn, pattern: str) -> dict[str, int]:
    """How many rows of each kind carry a tag matching `pattern`."""
    found = {}
    for kind, query in COUNTS.items():
        found[kind] = int(await conn.fetchval(f"SELECT count(*) FROM ({query}) AS t", pattern))  # nosec B608 # only constant SQL; the tag is an argument
    return found


async def delete(conn: Conn, pattern: str) -> list[dict[str, Any]]:
    """Delete the tagged rows, children first; returns the deleted files' storage (to remove
    their bytes once committed). Run in a transaction."""
    await conn.execute(f"DELETE FROM submissions WHERE id IN ({SUBMISSIONS})", pattern)  # nosec B608 # only constant SQL; the tag is an argument
    files = await conn.fetch(
        f"DELETE FROM files WHERE id IN ({FILES}) RETURNING storage, storage_key",  # nosec B608 # only constant SQL; the tag is an argument
        pattern,
    )
    await conn.execute(f"DELETE FROM assignments WHERE id IN ({ASSIGNMENTS})", pattern)  # nosec B608 # only constant SQL; the tag is an argument
    await conn.execute(f"DELETE FROM units WHERE id IN ({UNITS})", pattern)  # nosec B608 # only constant SQL; the tag is an argument
    await conn.execute(f"DELETE FROM users WHERE id IN ({USERS})", pattern)  # nosec B608 # only constant SQL; the tag is an argument
    return [dict(r) for r in files]
