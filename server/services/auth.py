"""Signing in and out: passwords checked in constant work, access tokens issued and checked,
refresh tokens rotated on every use with reuse detection (RFC 9700 4.14).

A sign-in is a refresh-token family, and every access token names its family (`sid`). So
revoking the family, on sign-out or on reuse of a spent refresh token, ends every access token
of that sign-in at its next request. Revocations live in PostgreSQL with the families (not in
Redis), and each request's account read checks them in the same query: they hold during a
Redis outage, and cost no extra round trip."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from server.domain.errors import InvalidCredentials, InvalidToken, LoginThrottled
from server.observability.logging import get_logger
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
            "token_type": "Bearer",  # nosec B105 # the OAuth token type name, not a secret
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
    access, seconds = keys.issue(user["id"], user["token_version"], family)
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
    client: str,
) -> Session:
    """A session for the right password of an active account; one answer for every failure,
    after the same hashing work whether or not the account exists. A client address with too
    many failures in a row for an email address must wait first (LoginThrottled), known or
    not (server.ratelimit.loginguard)."""
    if guard is not None and (throttle := await guard.attempt(email, client)) is not None:
        raise LoginThrottled(
            f"too many failed sign-ins; retry in {throttle.retry_after_header} s",
            headers={"Retry-After": throttle.retry_after_header},
        )
    async with db() as conn:
        user = await store.by_email(conn, email)
    stored = user["password_hash"] if user else None
    if not await passwords.verify(stored, password) or user is None or not user["is_active"]:
        raise InvalidCredentials("the email or password is wrong")
    if guard is not None:
        await guard.succeeded(email, client)
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


async def authenticate(*, db: Connect, claims: AccessClaims) -> dict[str, Any]:
    """The user a valid access token (its signature and claims checked) belongs to: the
    account still active at the token's version, and the token's sign-in not revoked. Both
    live in PostgreSQL beside the account, so a revocation holds whatever else is down."""
    async with db() as conn:
        user = await store.by_session(conn, claims.user_id, claims.session)
    if user is None or not user["is_active"] or user["token_version"] != claims.version:
        raise InvalidToken("the token has been revoked")
    if user.pop("session_revoked"):
        raise InvalidToken("the token has been revoked")
    return user


async def logout(
    *, db: Connect, user_id: int, claims: AccessClaims, refresh_token: str | None
) -> None:
    """End this sign-in: every access token issued in it (before or after a refresh) is
    refused from the next request on, with its refresh tokens; and the family of
    `refresh_token` too, if given and the user's. Committed before the answer: if PostgreSQL
    cannot take it, the caller gets 503, never a sign-out that revoked nothing."""
    async with db() as conn, conn.transaction():
        await sessions.revoke_family(conn, claims.session)
        if refresh_token:
            row = await sessions.take(conn, digest(refresh_token))
            if row is not None and row["user_id"] == user_id:
                await sessions.revoke_family(conn, row["family"])


async def logout_all(*, db: Connect, user_id: int) -> None:
    """End every session of the user, on every device."""
    async with db() as conn, conn.transaction():
        await store.bump_version(conn, user_id)
        await sessions.revoke_user(conn, user_id)
