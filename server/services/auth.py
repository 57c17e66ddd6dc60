"""Signing in and out: passwords checked in constant work, access tokens issued and checked,
refresh tokens rotated on every use with reuse detection (RFC 9700 4.14)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from server.domain.errors import InvalidCredentials, InvalidToken, LoginThrottled
from server.observability.logging import get_logger
from server.platform import tokens as token_infra
from server.platform.denylist import Denylist
from server.platform.passwords import Passwords
from server.platform.tokens import AccessClaims, TokenKeys, digest
from server.ratelimit.loginguard import LoginGuard
from server.store import Connect, sessions
from server.store import users as store

log = get_logger("btec.auth")


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_in,
        }


async def _open(
    conn: Any, keys: TokenKeys, user: dict[str, Any], family: uuid.UUID, days: float
) -> Session:
    """A new access token and a new refresh token in `family`, stored in `conn`'s
    transaction."""
    refresh = secrets.token_urlsafe(32)
    lifetime = dt.timedelta(days=days)
    await sessions.insert(
        conn, user_id=user["id"], family=family, token_hash=digest(refresh),
        expires_at=dt.datetime.now(dt.UTC) + lifetime,
    )  # fmt: skip
    access, seconds = keys.issue(user["id"], user["token_version"])
    return Session(access, seconds, refresh, int(lifetime.total_seconds()))


async def login(
    *,
    db: Connect,
    passwords: Passwords,
    keys: TokenKeys,
    guard: LoginGuard | None,
    email: str,
    password: str,
    refresh_days: float,
) -> Session:
    """A session for the right password of an active account; one answer for every failure,
    after the same hashing work whether or not the account exists. An address with too many
    failures in a row must wait first (LoginThrottled), known or not."""
    if guard is not None and (throttle := await guard.attempt(email)) is not None:
        raise LoginThrottled(
            f"too many failed sign-ins for this account; retry in {throttle.retry_after_header} s",
            headers={"Retry-After": throttle.retry_after_header},
        )
    async with db() as conn:
        user = await store.by_email(conn, email)
    stored = user["password_hash"] if user else None
    if not await passwords.verify(stored, password) or user is None or not user["is_active"]:
        raise InvalidCredentials("the email or password is wrong")
    if guard is not None:
        await guard.succeeded(email)
    fresh = (
        await passwords.hash(password) if passwords.needs_rehash(user["password_hash"]) else None
    )
    async with db() as conn, conn.transaction():
        if fresh is not None:
            await store.rehash(conn, user["id"], fresh)
        return await _open(conn, keys, user, uuid.uuid4(), refresh_days)


async def open_session(
    *, db: Connect, keys: TokenKeys, user: dict[str, Any], refresh_days: float
) -> Session:
    """A new sign-in for `user` (after a password change, say)."""
    async with db() as conn, conn.transaction():
        return await _open(conn, keys, user, uuid.uuid4(), refresh_days)


async def refresh(
    *, db: Connect, keys: TokenKeys, refresh_token: str, refresh_days: float
) -> Session:
    """Trade a refresh token for a new pair. The old one is spent; presenting a spent one
    again means it was stolen or replayed, so its whole family is revoked."""
    outcome: Session | str
    async with db() as conn, conn.transaction():
        row = await sessions.take(conn, digest(refresh_token))
        if row is None or row["revoked_at"] is not None:
            outcome = "the refresh token is not valid"
        elif row["rotated_at"] is not None:
            await sessions.revoke_family(conn, row["family"])
            log.warning("refresh_token_reused", user_id=row["user_id"])
            outcome = "the refresh token was already used; the session is revoked"
        elif row["expires_at"] <= dt.datetime.now(dt.UTC):
            outcome = "the refresh token has expired"
        else:
            user = await store.by_id(conn, row["user_id"])
            await sessions.rotate(conn, row["id"])
            if user is None or not user["is_active"]:
                await sessions.revoke_family(conn, row["family"])
                outcome = "the account is not active"
            else:
                outcome = await _open(conn, keys, user, row["family"], refresh_days)
    if isinstance(outcome, str):  # after the commit: revocations stand
        raise InvalidToken(outcome)
    return outcome


async def authenticate(
    *, db: Connect, claims: AccessClaims, denied: Awaitable[Any] | None
) -> dict[str, Any]:
    """The user a valid access token (its signature and claims checked) belongs to: not
    logged out (`denied`: the denylist check, started by the caller), and the account still
    active at the token's version."""
    if denied is not None and await _denied(denied):
        raise InvalidToken("the token has been revoked")
    async with db() as conn:
        user = await store.by_id(conn, claims.user_id)
    if user is None or not user["is_active"] or user["token_version"] != claims.version:
        raise InvalidToken("the token has been revoked")
    return user


async def _denied(check: Awaitable[Any]) -> bool:
    """Whether the token was logged out. With Redis unreachable this cannot be known: the
    token is accepted (it expires within BTEC_ACCESS_TOKEN_SECONDS) and the outage logged."""
    try:
        return bool(await check)
    except Exception as exc:
        log.warning("denylist_unavailable", error=type(exc).__name__)
        return False


async def logout(
    *,
    db: Connect,
    denylist: Denylist,
    user_id: int,
    claims: AccessClaims,
    refresh_token: str | None,
) -> None:
    """End this session: the access token is refused from now on, and the refresh token
    (if given, and the user's) with its whole family."""
    if refresh_token:
        async with db() as conn, conn.transaction():
            row = await sessions.take(conn, digest(refresh_token))
            if row is not None and row["user_id"] == user_id:
                await sessions.revoke_family(conn, row["family"])
    try:
        await denylist.deny(
            claims.jti, claims.expires_at - time.time() + token_infra.LEEWAY_SECONDS
        )
    except Exception as exc:  # Redis down: the access token lives out its short life
        log.warning("logout_denylist_unavailable", error=type(exc).__name__)


async def logout_all(*, db: Connect, user_id: int) -> None:
    """End every session of the user, on every device."""
    async with db() as conn, conn.transaction():
        await store.bump_version(conn, user_id)
        await sessions.revoke_user(conn, user_id)
