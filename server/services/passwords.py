"""Password reset by mail and password change: single-use hashed tokens, and every session
ended when a password changes (OWASP Forgot Password Cheat Sheet)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from server.domain.errors import InvalidResetToken, ValidationFailed, WrongPassword, field_error
from server.jobs.queue import Jobs
from server.platform.passwords import Passwords, password_problem
from server.platform.tokens import TokenKeys, digest
from server.services import notices
from server.services.auth import Session, open_session
from server.services.links import Links
from server.store import Connect, resets, sessions
from server.store import users as store

# The one answer of /password/forgot, whether or not the address has an account.
FORGOT_ANSWER = {
    "status": "accepted",
    "detail": "If an account uses this address, a message with a reset link is on its way.",
}


async def request_reset(*, jobs: Jobs, email: str) -> dict[str, str]:
    """Queue a reset link for the account using `email`, if one does; the same answer either
    way (the job looks the account up, so both ways take the same work here)."""
    await notices.password_reset(jobs, email)
    return FORGOT_ANSWER


async def issue_reset(
    *, db: Connect, email: str, minutes: int, links: Links
) -> dict[str, Any] | None:
    """A new reset token for an active account (replacing any other), as the mail's
    context; None when no active account uses `email`. Runs in the worker, so the token
    never sits in a job's arguments."""
    async with db() as conn:
        user = await store.by_email(conn, email)
        if user is None or not user["is_active"]:
            return None
        token = secrets.token_urlsafe(32)
        await resets.replace(
            conn, user_id=user["id"], token_hash=digest(token), version=user["token_version"],
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes),
        )  # fmt: skip
    link = links.reset_password(token)
    # No name: an unverified account's name was chosen by whoever registered the address.
    return {"link": link, "minutes": minutes, "to": user["email"]}


async def _new_password(conn: Any, user_id: int, password_hash: str) -> None:
    """The one way a password changes: new hash, token_version on (access tokens die),
    refresh tokens revoked, reset tokens gone."""
    await store.set_password(conn, user_id, password_hash)
    await sessions.revoke_user(conn, user_id)
    await resets.clear(conn, user_id)


def _usable(reset: dict[str, Any] | None) -> bool:
    return (
        reset is not None
        and reset["is_active"]
        and reset["issued_version"] == reset["token_version"]
        and reset["expires_at"] > dt.datetime.now(dt.UTC)
    )


async def reset_password(
    *, db: Connect, passwords: Passwords, jobs: Jobs, token: str, password: str
) -> dict[str, Any]:
    """Set the password with a reset token: once, before it expires, and only while the
    password is still the one it was issued under; the account is told by mail. Returns the
    user."""
    if why := password_problem(password):
        raise ValidationFailed(errors=[field_error("password", why)])
    token_hash = digest(token)
    async with db() as conn:
        if not _usable(await resets.find(conn, token_hash)):  # cheap refusal before hashing
            raise InvalidResetToken("the reset link is not valid, used or expired")
    hashed = await passwords.hash(password)
    async with db() as conn, conn.transaction():
        reset = await resets.find(conn, token_hash, lock=True)
        if reset is None or not _usable(reset):
            raise InvalidResetToken("the reset link is not valid, used or expired")
        await _new_password(conn, reset["user_id"], hashed)
        user = await store.by_id(conn, reset["user_id"])
    if user is None:
        raise RuntimeError("the user is gone right after the reset")
    await notices.password_changed(jobs, user)
    return user


async def change_password(
    *,
    db: Connect,
    passwords: Passwords,
    jobs: Jobs,
    keys: TokenKeys,
    refresh_days: float,
    user: dict[str, Any],
    current: str,
    new: str,
) -> Session:
    """A new password from the signed-in user, who proves the current one. Every session
    ends, the account is told by mail, and this device gets a new session."""
    if why := password_problem(new):
        raise ValidationFailed(errors=[field_error("new_password", why)])
    if not await passwords.verify(user["password_hash"], current):
        raise WrongPassword("the current password is wrong")
    hashed = await passwords.hash(new)
    async with db() as conn, conn.transaction():
        await _new_password(conn, user["id"], hashed)
        changed = await store.by_id(conn, user["id"])
    if changed is None:
        raise RuntimeError("the user is gone right after the password change")
    await notices.password_changed(jobs, changed)
    return await open_session(db=db, keys=keys, user=changed, refresh_days=refresh_days)
