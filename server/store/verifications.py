"""Every query of email verification tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from server.store import Conn


async def replace(
    conn: Conn,
    *,
    user_id: int,
    email: str,
    token_hash: bytes,
    expires_at: dt.datetime,
    new_address: bool,
) -> None:
    """The user's one live token, replacing any other."""
    await conn.execute(
        "INSERT INTO email_verifications (user_id, email, token_hash, expires_at, new_address) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET "
        "email = EXCLUDED.email, token_hash = EXCLUDED.token_hash, "
        "expires_at = EXCLUDED.expires_at, new_address = EXCLUDED.new_address, created_at = now()",
        user_id, email, token_hash, expires_at, new_address,
    )  # fmt: skip


async def find(conn: Conn, token_hash: bytes, *, lock: bool = False) -> dict[str, Any] | None:
    """The token's row with its user's current address."""
    row = await conn.fetchrow(
        "SELECT v.user_id, v.email, v.expires_at, v.new_address, u.email AS current_email, "  # nosec B608 # appends a literal FOR UPDATE clause; values are $n args
        "u.is_active "
        "FROM email_verifications v JOIN users u ON u.id = v.user_id "
        "WHERE v.token_hash = $1" + (" FOR UPDATE OF v" if lock else ""),
        token_hash,
    )
    return dict(row) if row else None


async def confirm(conn: Conn, user_id: int, email: str) -> bool:
    """`email` is the user's address, verified; the token is spent. False (and nothing
    changed, the transaction is aborted) when another account has taken the address."""
    try:
        await conn.execute(
            "UPDATE users SET email = $2, email_verified_at = now(), updated_at = now() "
            "WHERE id = $1",
            user_id, email,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        return False
    await conn.execute("DELETE FROM email_verifications WHERE user_id = $1", user_id)
    return True
