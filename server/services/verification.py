"""Email verification and address changes: tokens bound to (user, address), valid 24 hours,
used once; confirming is a POST, so link scanners that only GET cannot confirm. A token for a
new address makes it the account's address when confirmed."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from server.domain.errors import EmailTaken, InvalidVerifyToken
from server.jobs.queue import Jobs
from server.platform.tokens import digest
from server.services import notices
from server.services.links import Links
from server.store import Connect, verifications
from server.store import users as store

LIFETIME = dt.timedelta(hours=24)
RESEND_ANSWER = {
    "status": "accepted",
    "detail": "If the address still needs verifying, a message with a link is on its way.",
}


async def issue(
    *, db: Connect, user_id: int, links: Links, new_email: str | None = None
) -> dict[str, Any] | None:
    """A new token (replacing any other) as the mail's context: for the user's current
    address, or for `new_email` the user asked to change to. None when there is nothing to
    confirm: the account is gone or inactive, the address is verified already, or the new
    address is the current one or taken since. Runs in the worker."""
    async with db() as conn:
        user = await store.by_id(conn, user_id)
        if user is None or not user["is_active"]:
            return None
        if new_email is None:
            if user["email_verified_at"] is not None:
                return None
            address = user["email"]
        elif new_email.lower() == user["email"].lower() or await store.by_email(conn, new_email):
            return None
        else:
            address = new_email
        token = secrets.token_urlsafe(32)
        await verifications.replace(
            conn, user_id=user_id, email=address, token_hash=digest(token),
            expires_at=dt.datetime.now(dt.UTC) + LIFETIME, new_address=new_email is not None,
        )  # fmt: skip
    link = links.verify_email(token) if new_email is None else links.confirm_email_change(token)
    # No name: whoever registered chose it, and the address may not be theirs.
    return {"link": link, "to": address, "current": user["email"]}


def _usable(row: dict[str, Any] | None) -> bool:
    return (
        row is not None
        and row["is_active"]
        and (row["new_address"] or row["email"].lower() == row["current_email"].lower())
        and row["expires_at"] > dt.datetime.now(dt.UTC)
    )


async def preview(*, db: Connect, token: str) -> dict[str, Any]:
    """What confirming would do, without doing it (for a GET on the link)."""
    async with db() as conn:
        row = await verifications.find(conn, digest(token))
    if row is None or not _usable(row):
        raise InvalidVerifyToken("the verification link is not valid, used or expired")
    return {"email": row["email"], "confirm": "POST this token to confirm the address"}


async def resend(*, jobs: Jobs, user: dict[str, Any]) -> dict[str, str]:
    """The verification link again, while the address needs it; the same answer either way
    (the job's key is the cooldown)."""
    if user["email_verified_at"] is None:
        await notices.verification(jobs, user["id"])
    return RESEND_ANSWER


async def confirm(*, db: Connect, jobs: Jobs, token: str) -> dict[str, Any]:
    """Mark the address verified: once, within 24 hours, for the address it was sent to.
    When the token carried a new address, the old one is told where the account went.
    Returns the user."""
    async with db() as conn, conn.transaction():
        row = await verifications.find(conn, digest(token), lock=True)
        if row is None or not _usable(row):
            raise InvalidVerifyToken("the verification link is not valid, used or expired")
        if not await verifications.confirm(conn, row["user_id"], row["email"]):
            raise EmailTaken("another account uses this email address now")
        user = await store.by_id(conn, row["user_id"])
    if user is None:
        raise RuntimeError("the user is gone right after the verification")
    if row["new_address"]:
        await notices.email_changed(jobs, user, row["current_email"])
    return user
