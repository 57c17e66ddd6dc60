"""Every query of the accounts."""

from __future__ import annotations

import uuid
from typing import Any

from server.store import Conn, page_of

COLUMNS = (
    "id, email, full_name, role, is_active, email_verified_at, token_version, password_hash, "
    "created_at, updated_at"
)
ROLES = ("admin", "assessor", "student")


async def insert(
    conn: Conn, *, email: str, full_name: str, role: str, password_hash: str, verified: bool
) -> dict[str, Any] | None:
    """The new user, or None when the email (in any case) is taken."""
    row = await conn.fetchrow(
        f"INSERT INTO users (email, full_name, role, password_hash, email_verified_at) "  # nosec B608 # only the constant COLUMNS; values are $n args
        f"VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END) "
        f"ON CONFLICT ((lower(email))) DO NOTHING RETURNING {COLUMNS}",
        email, full_name, role, password_hash, verified,
    )  # fmt: skip
    return dict(row) if row else None


async def by_email(conn: Conn, email: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)",  # nosec B608 # only the constant COLUMNS; values are $n args
        email,
    )
    return dict(row) if row else None


async def page(
    conn: Conn, *, role: str | None, active: bool | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, count(*) OVER () AS total FROM users "  # nosec B608 # only the constant COLUMNS; values are $n args
        "WHERE ($1::text IS NULL OR role = $1) AND ($2::boolean IS NULL OR is_active = $2) "
        "ORDER BY id LIMIT $3 OFFSET $4",
        role, active, limit, offset,
    )  # fmt: skip
    return page_of(rows)


async def deactivate(conn: Conn, user_id: int) -> None:
    """Off, and every token issued so far dead (token_version moves on)."""
    await conn.execute(
        "UPDATE users SET is_active = false, token_version = token_version + 1, "
        "updated_at = now() WHERE id = $1",
        user_id,
    )


async def set_password(conn: Conn, user_id: int, password_hash: str) -> None:
    """A new hash, and every token issued so far dead."""
    await conn.execute(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1, "
        "updated_at = now() WHERE id = $1",
        user_id, password_hash,
    )  # fmt: skip


async def by_id(conn: Conn, user_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", user_id)  # nosec B608 # only the constant COLUMNS; values are $n args
    return dict(row) if row else None


async def by_session(conn: Conn, user_id: int, session: uuid.UUID) -> dict[str, Any] | None:
    """The user, with `session_revoked`: whether the sign-in `session` (a refresh-token
    family) has been revoked. One round trip for every authenticated request."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS}, EXISTS (SELECT 1 FROM refresh_tokens "  # nosec B608 # only the constant COLUMNS; values are $n args
        "WHERE family = $2 AND revoked_at IS NOT NULL) AS session_revoked "
        "FROM users WHERE id = $1",
        user_id, session,
    )  # fmt: skip
    return dict(row) if row else None


async def rehash(conn: Conn, user_id: int, password_hash: str) -> None:
    """The same password under today's hashing parameters: sessions stay."""
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id, password_hash,
    )  # fmt: skip


async def bump_version(conn: Conn, user_id: int) -> None:
    """Every access token issued so far stops working."""
    await conn.execute(
        "UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE id = $1",
        user_id,
    )


async def update(conn: Conn, user_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Apply `changes` (full_name, role, is_active: an allowlist). Deactivating moves
    token_version on, so every access token stops working; roles are read per request."""
    allowed = {k: v for k, v in changes.items() if k in ("full_name", "role", "is_active")}
    row = await conn.fetchrow(
        "UPDATE users SET full_name = coalesce($2, full_name), role = coalesce($3, role), "  # nosec B608 # only the constant COLUMNS; values are $n args
        "is_active = coalesce($4, is_active), "
        "token_version = token_version + CASE WHEN $4::boolean IS NOT NULL AND NOT $4 "
        "AND is_active THEN 1 ELSE 0 END, "
        f"updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",
        user_id, allowed.get("full_name"), allowed.get("role"), allowed.get("is_active"),
    )  # fmt: skip
    return dict(row) if row else None
