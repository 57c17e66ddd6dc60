"""Every query of password resets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.store import Conn


async def replace(
    conn: Conn, *, user_id: int, token_hash: bytes, version: int, expires_at: dt.datetime
) -> None:
    """The user's one live reset token: a new one replaces any other."""
    await conn.execute(
        "INSERT INTO password_resets (user_id, token_hash, issued_version, expires_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET "
        "token_hash = EXCLUDED.token_hash, issued_version = EXCLUDED.issued_version, "
        "expires_at = EXCLUDED.expires_at, created_at = now()",
        user_id, token_hash, version, expires_at,
    )  # fmt: skip


async def find(conn: Conn, token_hash: bytes, *, lock: bool = False) -> dict[str, Any] | None:
    """The live reset with this digest and its user's current token_version."""
    row = await conn.fetchrow(
        "SELECT r.user_id, r.issued_version, r.expires_at, u.token_version, u.is_active "  # nosec B608 # appends a literal FOR UPDATE clause; values are $n args
        "FROM password_resets r JOIN users u ON u.id = r.user_id "
        "WHERE r.token_hash = $1" + (" FOR UPDATE OF r" if lock else ""),
        token_hash,
    )
    return dict(row) if row else None


async def clear(conn: Conn, user_id: int) -> None:
    await conn.execute("DELETE FROM password_resets WHERE user_id = $1", user_id)
