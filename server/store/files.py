"""Every query of uploaded files."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from server.store import Conn, page_of

COLUMNS = (
    "id, owner_id, filename, kind, content_type, size_bytes, sha256, storage, storage_key, "
    "scan_status, scan_detail, scanned_at, created_at, updated_at"
)


async def used_bytes(conn: Conn, owner_id: int) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(size_bytes), 0) FROM files WHERE owner_id = $1", owner_id
        )
    )


async def insert_within_quota(conn: Conn, row: dict[str, Any], quota: int) -> dict[str, Any] | None:
    """Record a stored file unless its owner would pass `quota` bytes; None then. Run in a
    transaction: the owner's uploads are counted one at a time (an advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('btec.files'), $1::int)",
                       row["owner_id"] % 2_000_000_000)  # fmt: skip
    if await used_bytes(conn, row["owner_id"]) + row["size_bytes"] > quota:
        return None
    found = await conn.fetchrow(
        f"INSERT INTO files (id, owner_id, filename, kind, content_type, size_bytes, sha256, "  # nosec B608 # only the constant COLUMNS; values are $n args
        f"storage, storage_key, scan_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        f"RETURNING {COLUMNS}",
        row["id"],
        row["owner_id"],
        row["filename"],
        row["kind"],
        row["content_type"],
        row["size_bytes"],
        row["sha256"],
        row["storage"],
        row["storage_key"],
        row["scan_status"],
    )
    if found is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return dict(found)


async def by_id(conn: Conn, file_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM files WHERE id = $1", file_id)  # nosec B608 # only the constant COLUMNS; values are $n args
    return dict(row) if row else None


async def assessed_by(conn: Conn, file_id: uuid.UUID, assessor_id: int) -> bool:
    """Whether the file is evidence in a submission to an assignment the user assesses."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM submission_files sf "
        "JOIN submissions s ON s.id = sf.submission_id "
        "JOIN assignment_assessors aa ON aa.assignment_id = s.assignment_id "
        "WHERE sf.file_id = $1 AND aa.assessor_id = $2)",
        file_id, assessor_id,
    )  # fmt: skip
    return bool(found)


async def delete(conn: Conn, file_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"DELETE FROM files WHERE id = $1 RETURNING {COLUMNS}", file_id)  # nosec B608 # only the constant COLUMNS; values are $n args
    return dict(row) if row else None


async def set_verdict(
    conn: Conn, file_id: uuid.UUID, status: str, detail: str | None
) -> dict[str, Any] | None:
    """Record a scan's verdict on a file still pending (or errored: a retry); None if it is
    gone or was decided already."""
    row = await conn.fetchrow(
        f"UPDATE files SET scan_status = $2, scan_detail = $3, scanned_at = now(), "  # nosec B608 # only the constant COLUMNS; values are $n args
        f"updated_at = now() WHERE id = $1 AND scan_status IN ('pending', 'error') "
        f"RETURNING {COLUMNS}",
        file_id, status, detail,
    )  # fmt: skip
    return dict(row) if row else None


async def page(
    conn: Conn, *, owner_id: int | None, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Files newest first, of one owner (None: everyone's) and scan status (None: any), and
    how many there are in all."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, count(*) OVER () AS total FROM files "  # nosec B608 # only the constant COLUMNS; values are $n args
        "WHERE ($1::bigint IS NULL OR owner_id = $1) AND ($2::text IS NULL OR scan_status = $2) "
        "ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        owner_id, status, limit, offset,
    )  # fmt: skip
    return page_of(rows)


async def by_status(conn: Conn, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Files newest first, of one scan status (None: any), with the owner's address."""
    rows = await conn.fetch(
        "SELECT f.id, u.email AS owner, f.filename, f.kind, f.size_bytes, f.scan_status, "
        "f.scan_detail, f.created_at FROM files f JOIN users u ON u.id = f.owner_id "
        "WHERE ($1::text IS NULL OR f.scan_status = $1) ORDER BY f.created_at DESC LIMIT $2",
        status, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def mark_pending(conn: Conn, statuses: Sequence[str]) -> list[uuid.UUID]:
    """Files in any of `statuses` become `pending` (a scan is on its way); their ids."""
    rows = await conn.fetch(
        "UPDATE files SET scan_status = 'pending', updated_at = now() "
        "WHERE scan_status = ANY($1::text[]) RETURNING id",
        list(statuses),
    )
    return [r["id"] for r in rows]
