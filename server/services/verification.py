"""Email verification: tokens bound to (user, address), valid 24 hours, used once; confirming
is a POST, so link scanners that only GET cannot confirm."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import quote

from server.errors import DomainError
from server.infra.tokens import digest
from server.services.units import Connect
from server.store import users as store
from server.store import verifications

LIFETIME = dt.timedelta(hours=24)
RESEND_ANSWER = {
    "status": "accepted",
    "detail": "If the address still needs verifying, a message with a link is on its way.",
}


class InvalidVerifyToken(DomainError):
    status = 400
    code = "invalid_verify_token"
    title = "The verification link is not valid"


async def issue(*, db: Connect, user_id: int, public_url: str) -> dict[str, Any] | None:
    """A new token for the user's current address (replacing any other), as the mail's
    context; None when there is nothing to verify. Runs in the worker."""
    async with db() as conn:
        user = await store.by_id(conn, user_id)
        if user is None or not user["is_active"] or user["email_verified_at"] is not None:
            return None
        token = secrets.token_urlsafe(32)
        await verifications.replace(
            conn, user_id=user_id, email=user["email"], token_hash=digest(token),
            expires_at=dt.datetime.now(dt.UTC) + LIFETIME,
        )  # fmt: skip
    link = f"{public_url.rstrip('/')}/verify-email?token={quote(token)}"
    return {"name": user["full_name"], "link": link, "to": user["email"]}


def _usable(row: dict[str, Any] | None) -> bool:
    return (
        row is not None
        and row["is_active"]
        and row["email"].lower() == row["current_email"].lower()
        and row["expires_at"] > dt.datetime.now(dt.UTC)
    )


async def preview(*, db: Connect, token: str) -> dict[str, Any]:
    """What confirming would do, without doing it (for a GET on the link)."""
    async with db() as conn:
        row = await verifications.find(conn, digest(token))
    if row is None or not _usable(row):
        raise InvalidVerifyToken("the verification link is not valid, used or expired")
    return {"email": row["email"], "confirm": "POST this token to confirm the address"}


async def confirm(*, db: Connect, token: str) -> dict[str, Any]:
    """Mark the address verified: once, within 24 hours, for the address it was sent to."""
    async with db() as conn, conn.transaction():
        row = await verifications.find(conn, digest(token), lock=True)
        if row is None or not _usable(row):
            raise InvalidVerifyToken("the verification link is not valid, used or expired")
        await verifications.confirm(conn, row["user_id"])
        user = await store.by_id(conn, row["user_id"])
    assert user is not None
    return user
