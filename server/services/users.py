"""Accounts: create, find, list, deactivate, and set passwords. Every change that should end
a user's sessions moves their token_version on."""

from __future__ import annotations

import unicodedata
from typing import Any

from server.domain.errors import (
    EmailTaken,
    FieldError,
    NotFound,
    ValidationFailed,
    WrongPassword,
    field_error,
)
from server.jobs.queue import Jobs
from server.platform.passwords import Passwords, password_problem
from server.services import notices
from server.store import Connect, sessions
from server.store import users as store

ROLES = store.ROLES


def public(user: dict[str, Any]) -> dict[str, Any]:
    """A user as callers see it: never the password hash."""
    verified = user["email_verified_at"]
    return {
        "id": user["id"],
        "email": user["email"],
        "full_name": user["full_name"],
        "role": user["role"],
        "is_active": user["is_active"],
        "email_verified_at": verified.isoformat() if verified else None,
        "created_at": user["created_at"].isoformat(),
        "updated_at": user["updated_at"].isoformat(),
    }


def _clean_name(full_name: str) -> str:
    """A name as it is stored: trimmed, in NFC (one form for each accented letter)."""
    return unicodedata.normalize("NFC", full_name.strip())


def _name_problem(full_name: str) -> str | None:
    if not 1 <= len(full_name) <= 200:
        return "1 to 200 characters."
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in full_name):
        return "Control and format characters are not allowed."
    return None


async def create_user(
    *,
    db: Connect,
    passwords: Passwords,
    email: str,
    full_name: str,
    role: str,
    password: str,
    verified: bool,
) -> dict[str, Any]:
    """A new account; `email` must already be a valid address (the API's MailAddress)."""
    full_name = _clean_name(full_name)
    problems = [
        field_error(field, why)
        for field, why in (
            ("password", password_problem(password)),
            ("full_name", _name_problem(full_name)),
            ("role", None if role in ROLES else f"One of {', '.join(ROLES)}."),
        )
        if why
    ]
    if problems:
        raise ValidationFailed(errors=problems)
    hashed = await passwords.hash(password)
    async with db() as conn:
        user = await store.insert(
            conn, email=email, full_name=full_name, role=role, password_hash=hashed,
            verified=verified,
        )  # fmt: skip
    if user is None:
        raise EmailTaken("an account uses this email address")
    return public(user)


async def register(
    *, db: Connect, passwords: Passwords, jobs: Jobs, email: str, full_name: str, password: str
) -> dict[str, Any]:
    """A student account of one's own, unverified until the link mailed to it is confirmed."""
    user = await create_user(
        db=db, passwords=passwords, email=email, full_name=full_name, role="student",
        password=password, verified=False,
    )  # fmt: skip
    await notices.verification(jobs, user["id"])
    return user


async def _existing(db: Connect, email: str) -> dict[str, Any]:
    async with db() as conn:
        user = await store.by_email(conn, email)
    if user is None:
        raise NotFound("no account has this email address")
    return user


async def list_users(
    *, db: Connect, role: str | None, active: bool | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    async with db() as conn:
        users, total = await store.page(conn, role=role, active=active, limit=limit, offset=offset)
    return [public(u) for u in users], total


async def deactivate(*, db: Connect, email: str) -> dict[str, Any]:
    """The account can no longer sign in, and every access and refresh token it holds stops
    working."""
    user = await _existing(db, email)
    async with db() as conn, conn.transaction():
        await store.deactivate(conn, user["id"])
        await sessions.revoke_user(conn, user["id"])
        changed = await store.by_email(conn, email)
    if changed is None:
        raise RuntimeError("the user is gone right after the deactivation")
    return public(changed)


async def set_password(
    *, db: Connect, passwords: Passwords, email: str, password: str
) -> dict[str, Any]:
    """A new password; every access and refresh token the user holds stops working."""
    if why := password_problem(password):
        raise ValidationFailed(errors=[field_error("password", why)])
    user = await _existing(db, email)
    hashed = await passwords.hash(password)
    async with db() as conn, conn.transaction():
        await store.set_password(conn, user["id"], hashed)
        await sessions.revoke_user(conn, user["id"])
    return public(user)


async def get_user(*, db: Connect, user_id: int) -> dict[str, Any]:
    async with db() as conn:
        user = await store.by_id(conn, user_id)
    if user is None:
        raise NotFound(f"no user has id {user_id}")
    return public(user)


async def update_user(*, db: Connect, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Change a user's name, role or active flag. Deactivating ends every session; a new role
    applies from the user's next request."""
    problems: list[FieldError] = []
    if "full_name" in changes:
        changes["full_name"] = _clean_name(changes["full_name"])
        if why := _name_problem(changes["full_name"]):
            problems.append(field_error("full_name", why))
    if "role" in changes and changes["role"] not in ROLES:
        problems.append(field_error("role", f"One of {', '.join(ROLES)}."))
    if problems:
        raise ValidationFailed(errors=problems)
    async with db() as conn, conn.transaction():
        user = await store.update(conn, user_id, changes)
        if user is not None and changes.get("is_active") is False:
            await sessions.revoke_user(conn, user_id)
    if user is None:
        raise NotFound(f"no user has id {user_id}")
    return public(user)


async def update_me(
    *,
    db: Connect,
    passwords: Passwords,
    jobs: Jobs,
    user: dict[str, Any],
    full_name: str | None,
    email: str | None,
    current_password: str | None,
) -> dict[str, Any]:
    """The signed-in user's own changes: a new name at once; a new address only once it is
    confirmed from a link mailed to it, and only with the current password, so a stolen
    access token cannot take the account over. Returns the profile with the address waiting
    for confirmation (`pending_email`), if any."""
    problems: list[FieldError] = []
    if full_name is not None:
        full_name = _clean_name(full_name)
        if why := _name_problem(full_name):
            problems.append(field_error("full_name", why))
    pending = email if email is not None and email.lower() != user["email"].lower() else None
    if pending is not None and current_password is None:
        problems.append(
            field_error("current_password", "Required to change the email address.", "required")
        )
    if full_name is None and email is None:
        problems.append(field_error((), "Send full_name, email or both."))
    if problems:
        raise ValidationFailed(errors=problems)
    if pending is not None:
        if not await passwords.verify(user["password_hash"], current_password or ""):
            raise WrongPassword("the current password is wrong")
        async with db() as conn:
            if await store.by_email(conn, pending) is not None:
                raise EmailTaken("an account uses this email address")
    if full_name is not None and full_name != user["full_name"]:
        async with db() as conn:
            user = await store.update(conn, user["id"], {"full_name": full_name}) or user
    if pending is not None:
        await notices.email_change(jobs, user["id"], pending)
    return public(user) | {"pending_email": pending}
