"""Every query of refresh tokens (sessions)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from server.store import Conn


async def insert(
    conn: Conn, *, user_id: int, family: uuid.UUID, token_hash: bytes, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at) "
        "VALUES ($1, $2, $3, $4)",
        user_id, family, token_hash, expires_at,
    )  # fmt: skip


async def take(conn: Conn, token_hash: bytes) -> dict[str, Any] | None:
    """The token's row, locked until the transaction ends (one refresh at a time)."""
    row = await conn.fetchrow(
        "SELECT id, user_id, family, expires_at, rotated_at, revoked_at FROM refresh_tokens "
        "WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    return dict(row) if row else None


async def rotate(conn: Conn, token_id: int) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: Conn, family: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
        family,
    )


async def revoke_user(conn: Conn, user_id: int) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
